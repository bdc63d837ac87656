#!/usr/bin/env bash
# 4.2) data_src util faceset metadata restore: put the saved metadata back into the edited faces
# of data_src/aligned.
# Extra arguments go to main.py; WORKSPACE=/path overrides the workspace folder.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
"$VENV_PY" "$REPO_ROOT/main.py" util \
    --input-dir "$WORKSPACE/data_src/aligned" \
    --restore-faceset-metadata \
    "$@"
