#!/usr/bin/env bash
# Fuzzes the API against the OpenAPI document it serves: schemathesis (installed into
# .venv/tools by tools.sh) runs every phase (examples, coverage, fuzzing, and stateful
# sequences that follow the document's links from create to get, update, delete and the
# rest) against the local runner on the memory backend, with the runner's development
# token, once reading JSON answers and once (a third of the examples) YAML ones, which
# carry the same tree. It fails on a server error, a status the document does not list,
# an answer that breaks its schema or content type, an operation that accepts data its
# schema forbids, or a route that ignores its token.
#
# The runner and schemathesis run in a network namespace of their own (`unshare -n`) with
# only loopback: generated subscriptions point at arbitrary hosts, and their deliveries
# and dispatches must reach none of them.
#
# Before that, the document itself is checked against OpenAPI 3.1's schema.
# XML answers are not schema-checked here (the Rust tests read them back as the JSON tree).
#
# SCHEMATHESIS_MAX_EXAMPLES (default 100) and SCHEMATHESIS_SEED (default fixed, so that a
# failure in CI reproduces; `random` for a new one) tune the run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

# shellcheck source=infra/scripts/tools.sh
source infra/scripts/tools.sh
ensure_python_tools

if ! unshare -n true 2>/dev/null; then
  echo "schemathesis.sh: cannot make a network namespace (unshare -n); refusing to fuzz with the network reachable" >&2
  exit 1
fi

echo "schemathesis.sh: checking functions/api/openapi.json against the OpenAPI 3.1 schema" >&2
"$TOOLS_VENV/bin/python" - functions/api/openapi.json <<'PY'
import json, sys
from openapi_spec_validator.validation.validators import OpenAPIV31SpecValidator
errors = list(OpenAPIV31SpecValidator(json.load(open(sys.argv[1]))).iter_errors())
for e in errors:
    print(f"openapi.json: {'/'.join(map(str, e.path))}: {e.message}", file=sys.stderr)
sys.exit(1 if errors else 0)
PY

target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
runner_bin="$(local_runner_bin)"
mkdir -p "$target_dir/schemathesis"

export ST_BIN="$runner_bin"
export ST_OUT="$target_dir/schemathesis"
export ST_SCHEMATHESIS="$TOOLS_VENV/bin/schemathesis"
export ST_MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-100}"
export ST_SEED="${SCHEMATHESIS_SEED:-20261128}"

unshare -n bash -euo pipefail -c '
ip link set lo up
port=3900
export PORT=$port WEBHOOKS_BACKEND=memory WEBHOOKS_RATE_LIMIT_PER_MINUTE=0 WEBHOOKS_DELIVERY_TIMEOUT_SECS=2
"$ST_BIN" >"$ST_OUT/runner.log" 2>&1 &
runner=$!
trap "kill $runner 2>/dev/null || true; wait $runner 2>/dev/null || true" EXIT
base="http://127.0.0.1:$port"
for _ in $(seq 1 150); do
  curl -fsS -o /dev/null "$base/api/v0/webhooks/openapi.json" 2>/dev/null && break
  kill -0 $runner 2>/dev/null || { cat "$ST_OUT/runner.log" >&2; exit 1; }
  sleep 0.2
done
token=$("$ST_BIN" token)
seed=()
[[ $ST_SEED == random ]] || seed=(--seed "$ST_SEED")
checks=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection,ensure_resource_availability,ignored_auth,missing_required_header
total=0
failed=0
# pass NAME MAX_EXAMPLES [HEADER]: one schemathesis run; JSON answers, then YAML ones
# (the same tree, so the same schemas apply).
pass() {
  local name=$1 examples=$2
  shift 2
  local extra=()
  [[ $# -gt 0 ]] && extra=(--header "$1")
  set +e
  "$ST_SCHEMATHESIS" run "$base/api/v0/webhooks/openapi.json" \
    --header "Authorization: Bearer $token" "${extra[@]}" \
    --checks "$checks" --max-examples "$examples" "${seed[@]}" --workers 1 --no-color \
    --report junit --report-junit-path "$ST_OUT/junit-$name.xml" 2>&1 | tee "$ST_OUT/output-$name.txt"
  local status=${PIPESTATUS[0]}
  set -e
  local cases
  cases=$(grep -Eo "[0-9]+ generated" "$ST_OUT/output-$name.txt" | tail -n1 | grep -Eo "[0-9]+" || echo 0)
  echo "schemathesis ($name answers) ran $cases test cases against the local runner (memory backend), exit $status"
  total=$((total + cases))
  [[ $status -eq 0 ]] || failed=$((failed + 1))
}
pass json "$ST_MAX_EXAMPLES"
pass yaml $(( (ST_MAX_EXAMPLES + 2) / 3 )) "Accept: text/x-yaml"
if [[ $failed -eq 0 ]]; then
  echo "schemathesis: $total passed, 0 failed"
else
  echo "schemathesis: $failed of 2 runs failed; the failures are above, the JUnit reports in $ST_OUT"
  exit 1
fi
'
