#!/usr/bin/env bash
# 4.2) data_src util recover original filename: rename the faces of data_src/aligned back to their
# extraction names (after sort).
# Extra arguments go to main.py; WORKSPACE=/path overrides the workspace folder.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
"$VENV_PY" "$REPO_ROOT/main.py" util \
    --input-dir "$WORKSPACE/data_src/aligned" \
    --recover-original-aligned-filename \
    "$@"
