#!/usr/bin/env bash
# Runs every test on a fresh machine: installs what they need (Debian's Chromium and npm, the Python
# packages, the verified browser runtime in vendor/, axe-core), then pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=""
command -v chromium >/dev/null 2>&1 || missing="chromium"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
if [ -n "$missing" ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq $missing >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check -r requirements-dev.txt
python3 tools/vendor_runtime.py
python3 tools/axe_core.py >/dev/null  # axe-core for tests/e2e/test_accessibility.py, verified
exec python3 -m pytest "$@"
