#!/usr/bin/env bash
# 5.XSeg.optional) trained mask data_src - apply: bake the XSeg mask trained in workspace/model
# into every face of data_src/aligned (training and merging then use it). Safe to stop and rerun.
# Extra arguments go to main.py; WORKSPACE=/path overrides the workspace folder.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
"$VENV_PY" "$REPO_ROOT/main.py" xseg apply \
    --input-dir "$WORKSPACE/data_src/aligned" \
    --model-dir "$WORKSPACE/model" \
    "$@"
