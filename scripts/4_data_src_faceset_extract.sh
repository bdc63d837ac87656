#!/usr/bin/env bash
# 4) data_src faceset extract: detect, align and save the faces of the data_src frames into
# data_src/aligned. Asks face type, image size and jpeg quality.
# Extra arguments go to main.py; WORKSPACE=/path overrides the workspace folder.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
"$VENV_PY" "$REPO_ROOT/main.py" extract \
    --input-dir "$WORKSPACE/data_src" \
    --output-dir "$WORKSPACE/data_src/aligned" \
    --detector centerface \
    "$@"
