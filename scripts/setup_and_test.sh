#!/usr/bin/env bash
# Set up .venv (once) and run the whole test suite. Exits non-zero if a test fails or none ran.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
ensure_venv requirements-dev.txt
# Window tests (manual extraction, preview and merger windows) run under a virtual X server.
if ! command -v Xvfb >/dev/null 2>&1 || ! command -v xdotool >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
        echo "Installing xvfb and xdotool for the window tests"
        { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq xvfb xdotool >/dev/null; } ||
            echo "Warning: could not install xvfb and xdotool; the window tests will fail (apt-get install xvfb xdotool)" >&2
    else
        echo "Warning: install Xvfb and xdotool for the window tests" >&2
    fi
fi
cd "$REPO_ROOT"
# Two test processes (TEST_WORKERS=N to change, 0 = one process); each test file stays in one process, so
# its module fixtures (a trained tiny model, a faceset) are built once. Files go out in collection order, where
# tests/conftest.py puts the longest first (xdist would otherwise order them by test count).
exec "$VENV_PY" -m pytest tests -q -p no:cacheprovider -n "${TEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder "$@"
