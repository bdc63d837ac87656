#!/usr/bin/env bash
# 5.2) data_dst util faceset unpack: write the faces of data_dst/aligned/faceset.pak back as
# files.
# Extra arguments go to main.py; WORKSPACE=/path overrides the workspace folder.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
"$VENV_PY" "$REPO_ROOT/main.py" util \
    --input-dir "$WORKSPACE/data_dst/aligned" \
    --unpack-faceset \
    "$@"
