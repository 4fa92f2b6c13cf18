#!/usr/bin/env bash
# Runs every test on a fresh machine: installs what they need (Debian's Chromium, npm and node,
# clang-14 and lld-14 for the kernels' rebuild check, and the
# venv module where Debian ships it apart), makes a virtual environment in .venv/ with the Python
# packages of requirements-dev.txt (a system python3 may refuse a system-wide pip install, PEP
# 668), fills vendor/ with the verified browser runtime and fetches axe-core, then runs pytest in
# the venv. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=""
command -v chromium >/dev/null 2>&1 || missing="chromium"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
command -v node >/dev/null 2>&1 || missing="$missing nodejs"  # runs kernels/matmul.wasm in tests/test_kernels.py
command -v clang-14 >/dev/null 2>&1 && command -v wasm-ld-14 >/dev/null 2>&1 || missing="$missing clang-14 lld-14"  # rebuilds it
[ -x .venv/bin/python ] || python3 -c "import ensurepip" 2>/dev/null || missing="$missing python3-venv"
if [ -n "$missing" ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq $missing >/dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
python=.venv/bin/python
$python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
$python tools/vendor_runtime.py
$python tools/axe_core.py >/dev/null  # axe-core for tests/e2e/test_accessibility.py, verified
exec $python -m pytest "$@"
