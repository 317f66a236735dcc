#!/usr/bin/env bash
# Builds the three Lambda functions for arm64 exactly as `sam build` does on a deployer's
# machine: installs cargo-lambda and Zig (from PyPI) into .venv/lambda and the aarch64
# Rust target when missing, then runs the SAM CLI from .venv/sam. CI runs it, so a change
# that breaks the deployer's build fails there (a release cross-build takes ~7 minutes on
# 2 cores).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

# shellcheck source=infra/scripts/tools.sh
source infra/scripts/tools.sh
ensure_python_tools
if [[ ! -x .venv/lambda/bin/cargo-lambda ]]; then
  python3 -m venv .venv/lambda
  .venv/lambda/bin/pip install --quiet --disable-pip-version-check cargo-lambda ziglang
fi
rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu
PATH="$PWD/.venv/lambda/bin:$PATH" SAM_CLI_TELEMETRY=0 "$SAM" build "$@"
file .aws-sam/build/*/bootstrap
