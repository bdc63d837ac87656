#!/usr/bin/env bash
# Set up .venv (once) and run the whole test suite. Exits non-zero if a test fails or none ran.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
ensure_venv requirements-dev.txt
cd "$REPO_ROOT"
exec "$VENV_PY" -m pytest tests -q -p no:cacheprovider "$@"
