#!/usr/bin/env bash
# Set up .venv (once) and run the main job on the bundled demo workspace.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
ensure_venv requirements.txt
cd "$REPO_ROOT"
exec "$VENV_PY" main.py demo --workspace "$REPO_ROOT/workspace" "$@"
