#!/usr/bin/env bash
# 5.XSeg) data_dst mask - edit: open the labelling window on data_dst/aligned: draw include
# and exclude polygons around what is face and what covers it (hands, hair, glasses). Each
# face's labels are saved when you leave it. Add --model-dir to see a trained mask too.
# Extra arguments go to main.py; WORKSPACE=/path overrides the workspace folder.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
"$VENV_PY" "$REPO_ROOT/main.py" xseg editor \
    --input-dir "$WORKSPACE/data_dst/aligned" \
    "$@"
