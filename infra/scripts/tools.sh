# shellcheck shell=bash
# Python-based development tools, installed into virtualenvs under .venv/ at the repo root.
#
# Source this file, then call:
#   ensure_python_tools   creates/refreshes the venvs and exports MOTO_SERVER, CFN_LINT, SAM
#   start_moto            starts moto_server on a free 127.0.0.1 port, exports MOTO_ENDPOINT,
#                         and stops it when the sourcing shell exits
#   local_runner_bin      prints the path of a debug build of the local runner, building it
#                         unless WEBHOOKS_LOCAL_BIN already names one
#
# Two venvs on purpose. cfn-lint 1.54.0 dropped aws-sam-translator: from then on it checks
# AWS::Serverless resources against bundled schemas and no longer lints the transformed
# template, so it misses errors (e.g. an HttpApi event whose ApiId names no HttpApi).
# 1.53.3 is the last release that runs the real SAM transform. The SAM CLI requires a
# cfn-lint range that resolves to a newer one, so `cfn-lint` comes from .venv/tools and
# `sam` from .venv/sam.
#
# Each venv carries a stamp file holding the pinned requirements it was built from; when
# the pins below change, the venv is rebuilt from scratch. With an up-to-date stamp,
# ensure_python_tools only compares a file and returns.

TOOLS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS_PYTHON="${TOOLS_PYTHON:-python3}"

# Pinned versions (verified to install on Python 3.11). schemathesis fuzzes the API against
# its OpenAPI document (schemathesis.sh), after openapi-spec-validator checked the document
# against OpenAPI 3.1's own schema; selenium drives Chromium in the panel test
# (panel-test.sh). selenium 4.52 needs a certifi newer than the registry serves here.
TOOLS_REQUIREMENTS=(
  "moto[server]==5.2.5"
  "cfn-lint==1.53.3"
  "schemathesis==4.32.5"
  "openapi-spec-validator==0.9.0"
  "selenium==4.51.0"
)
SAM_REQUIREMENTS=(
  "aws-sam-cli==1.170.0"
)

TOOLS_VENV="$TOOLS_ROOT/.venv/tools"
SAM_VENV="$TOOLS_ROOT/.venv/sam"

# _tools_venv DIR REQUIREMENT... : make DIR a venv holding exactly these pins.
_tools_venv() {
  local dir=$1
  shift
  local stamp="$dir/.tools-stamp"
  local want
  want="$(printf '%s\n' "$@"; "$TOOLS_PYTHON" -c 'import sys; print("python", sys.version.split()[0])')" || return 1
  if [[ -x "$dir/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return 0
  fi
  echo "tools.sh: installing into ${dir#"$TOOLS_ROOT"/}: $*" >&2
  rm -rf "$dir"
  mkdir -p "$(dirname "$dir")"
  "$TOOLS_PYTHON" -m venv "$dir" || return 1
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "$@" || {
    echo "tools.sh: pip install into $dir failed" >&2
    return 1
  }
  printf '%s\n' "$want" >"$stamp.tmp" && mv "$stamp.tmp" "$stamp"
}

ensure_python_tools() {
  mkdir -p "$TOOLS_ROOT/.venv"
  # Serialise concurrent callers (e.g. two scripts started at once) on one lock file.
  if command -v flock >/dev/null 2>&1; then
    (
      flock 9
      _tools_venv "$TOOLS_VENV" "${TOOLS_REQUIREMENTS[@]}" &&
        _tools_venv "$SAM_VENV" "${SAM_REQUIREMENTS[@]}"
    ) 9>"$TOOLS_ROOT/.venv/.lock" || return 1
  else
    _tools_venv "$TOOLS_VENV" "${TOOLS_REQUIREMENTS[@]}" || return 1
    _tools_venv "$SAM_VENV" "${SAM_REQUIREMENTS[@]}" || return 1
  fi
  export MOTO_SERVER="$TOOLS_VENV/bin/moto_server"
  export CFN_LINT="$TOOLS_VENV/bin/cfn-lint"
  export SAM="$SAM_VENV/bin/sam"
  export TOOLS_PYTHON_BIN="$TOOLS_VENV/bin/python"
}

# _tools_add_exit_trap COMMAND : run COMMAND at exit, after whatever EXIT trap was there.
_tools_add_exit_trap() {
  local command=$1 existing
  existing="$(trap -p EXIT)"
  if [[ -n $existing ]]; then
    # `trap -p` prints `trap -- 'quoted command' EXIT`; let the shell unquote it.
    eval "set -- $existing"
    [[ "$3" == *"$command"* ]] || trap -- "$3
$command" EXIT
  else
    trap -- "$command" EXIT
  fi
}

stop_moto() {
  if [[ -n ${MOTO_PID:-} ]]; then
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
    unset MOTO_PID
  fi
}

# start_moto : start moto_server in the background on a free loopback port and wait for it.
start_moto() {
  if [[ -n ${MOTO_PID:-} ]] && kill -0 "$MOTO_PID" 2>/dev/null; then
    return 0
  fi
  ensure_python_tools || return 1
  local port log i
  port="$("$TOOLS_PYTHON_BIN" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()')" || return 1
  mkdir -p "$TOOLS_ROOT/target"
  log="$TOOLS_ROOT/target/moto.log"
  "$MOTO_SERVER" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
  MOTO_PID=$!
  _tools_add_exit_trap stop_moto
  for ((i = 0; i < 150; i++)); do
    if curl -fsS -o /dev/null "http://127.0.0.1:$port/moto-api/" 2>/dev/null; then
      export MOTO_ENDPOINT="http://127.0.0.1:$port"
      echo "tools.sh: moto_server (pid $MOTO_PID) listening on $MOTO_ENDPOINT, log in ${log#"$TOOLS_ROOT"/}" >&2
      return 0
    fi
    if ! kill -0 "$MOTO_PID" 2>/dev/null; then
      break
    fi
    sleep 0.2
  done
  echo "tools.sh: moto_server did not come up on port $port; last lines of $log:" >&2
  tail -n 20 "$log" >&2 || true
  stop_moto
  return 1
}

# The debug build of the local runner, for the scripts that drive it from outside.
# test.sh sets WEBHOOKS_LOCAL_BIN to the one `cargo test --workspace` has just built: a
# `cargo build -p webhooks-local` of its own resolves other features (no dev-dependencies),
# so it would rebuild the whole dependency tree a second time (minutes and about 1 GB of
# target/ on a clean clone).
local_runner_bin() {
  if [[ -n ${WEBHOOKS_LOCAL_BIN:-} ]]; then
    printf '%s\n' "$WEBHOOKS_LOCAL_BIN"
    return
  fi
  cargo build -q -p webhooks-local >&2
  printf '%s\n' "${CARGO_TARGET_DIR:-$TOOLS_ROOT/target}/debug/webhooks-local"
}
