#!/usr/bin/env bash
# Validate the SAM template offline: `sam validate --lint`, then cfn-lint on its own.
# Needs no AWS account: the SAM transform runs locally and the credentials below are
# dummies that only satisfy the SDK's lookup.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=infra/scripts/tools.sh
source infra/scripts/tools.sh
ensure_python_tools

TEMPLATE="${1:-template.yaml}"

export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-testing}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-testing}"
export AWS_SESSION_TOKEN="${AWS_SESSION_TOKEN:-testing}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export AWS_EC2_METADATA_DISABLED=true
export SAM_CLI_TELEMETRY=0
export AWS_SHARED_CREDENTIALS_FILE=/dev/null
export AWS_CONFIG_FILE=/dev/null

echo "== sam validate --lint ($TEMPLATE)"
"$SAM" validate --lint --template "$TEMPLATE" --region us-east-1

echo "== cfn-lint ($TEMPLATE)"
"$CFN_LINT" "$TEMPLATE"

echo "template checks passed"
