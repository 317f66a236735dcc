#!/usr/bin/env bash
# Runs every test: installs moto, schemathesis, selenium (and the template tools) into
# .venv/ when missing, starts one moto server for the whole run, then `cargo test
# --workspace`, then (without arguments) the API fuzzed against its OpenAPI document
# (schemathesis.sh) and the control panel in headless Chromium (panel-test.sh).
# Extra arguments go to cargo test alone, e.g. `infra/scripts/test.sh -p webhooks-core`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

# shellcheck source=infra/scripts/tools.sh
source infra/scripts/tools.sh
ensure_python_tools
start_moto
echo "moto is serving DynamoDB and SQS at $MOTO_ENDPOINT" >&2

cargo test --workspace "$@"

if [[ $# -eq 0 ]]; then
  # The runner binary the workspace's tests were built with (see local_runner_bin).
  export WEBHOOKS_LOCAL_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/webhooks-local"
  bash infra/scripts/schemathesis.sh
  bash infra/scripts/panel-test.sh
fi
