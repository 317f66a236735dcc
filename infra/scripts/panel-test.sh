#!/usr/bin/env bash
# The control panel end to end in headless Chromium (panel_test.py), on both backends of
# the local runner: memory, and aws on a moto server of its own. Installs Debian's
# chromium and chromium-driver when missing (CI starts from a clean machine), and selenium
# with the other Python tools. Runs in a network namespace with only loopback, so neither
# the browser nor the platform reaches anything but the processes the test starts.
#
# PANEL_SCREENSHOT=path saves the memory backend's page there (docs/panel.png is one).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  echo "panel-test.sh: installing chromium and chromium-driver" >&2
  as_root=()
  [[ $(id -u) -eq 0 ]] || as_root=(sudo)
  "${as_root[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq chromium chromium-driver >/dev/null
fi

# shellcheck source=infra/scripts/tools.sh
source infra/scripts/tools.sh
ensure_python_tools

if ! unshare -n true 2>/dev/null; then
  echo "panel-test.sh: cannot make a network namespace (unshare -n)" >&2
  exit 1
fi

target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
runner_bin="$(local_runner_bin)"
mkdir -p "$target_dir/panel"

export PANEL_PYTHON="$TOOLS_PYTHON_BIN" PANEL_BIN="$runner_bin"
export PANEL_MOTO="$MOTO_SERVER" PANEL_SHOT="${PANEL_SCREENSHOT:-$target_dir/panel/panel.png}"
unshare -n bash -euo pipefail -c '
ip link set lo up
passed=0
for backend in memory aws; do
  shot=()
  [[ $backend == memory ]] && shot=(--screenshot "$PANEL_SHOT")
  "$PANEL_PYTHON" infra/scripts/panel_test.py --backend "$backend" --bin "$PANEL_BIN" --moto "$PANEL_MOTO" "${shot[@]}"
  passed=$((passed + 1))
done
echo "panel: $passed passed, 0 failed"
'
