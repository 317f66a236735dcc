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

# The template again with SubnetIds and SecurityGroupIds set (fixed source addresses), and
# the access check (which puts the fan-out in the VPC too).
# cfn-lint 1.53.3 ignores parameter values on a template with the SAM transform (it lints
# its own transform of it without them), and takes a CommaDelimitedList's value as a list
# only from a parameter file; so lint SAM's transform of the template (sam-transform.py),
# with the values from a file. cfn-lint does not evaluate Rules:
# tests/tests/source_addresses.rs does, and checks what the subnets change.
echo "== cfn-lint (the transformed $TEMPLATE, with SubnetIds, SecurityGroupIds and the access check)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
"$SAM_VENV/bin/python" infra/scripts/sam-transform.py "$TEMPLATE" >"$WORK/transformed.json"
cat >"$WORK/in-vpc.json" <<'JSON'
[
  {"ParameterKey": "SubnetIds", "ParameterValue": ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]},
  {"ParameterKey": "SecurityGroupIds", "ParameterValue": ["sg-0123456789abcdef0"]},
  {"ParameterKey": "JwtSecret", "ParameterValue": "a-shared-secret-of-at-least-32-characters"},
  {"ParameterKey": "AccessCheckUrl", "ParameterValue": "https://hq.example.com/webhooks/access"},
  {"ParameterKey": "AccessCheckSecret", "ParameterValue": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
]
JSON
"$CFN_LINT" "$WORK/transformed.json" --parameter-files "$WORK/in-vpc.json"

echo "template checks passed"
