#!/usr/bin/env bash
# Sourced first by every numbered script: strict mode, the repo's .venv (made on first use) and the
# workspace. Sets REPO_ROOT, VENV_PY and WORKSPACE (default <repo>/workspace; set WORKSPACE=/path to
# work on another project folder).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
ensure_venv requirements.txt
WORKSPACE="${WORKSPACE:-$REPO_ROOT/workspace}"
