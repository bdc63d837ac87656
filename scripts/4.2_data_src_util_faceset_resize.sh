#!/usr/bin/env bash
# 4.2) data_src util faceset resize: resize the faces of data_src/aligned (landmarks and masks
# follow). Asks the size.
# Extra arguments go to main.py; WORKSPACE=/path overrides the workspace folder.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
"$VENV_PY" "$REPO_ROOT/main.py" facesettool resize \
    --input-dir "$WORKSPACE/data_src/aligned" \
    "$@"
