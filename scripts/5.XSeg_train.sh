#!/usr/bin/env bash
# 5.XSeg) train: train the XSeg mask network on the labelled faces of data_src/aligned and
# data_dst/aligned into workspace/model (with no labels at all it learns from the landmarks and
# synthetic occluders). A preview window shows progress; Enter (or Ctrl+C without a window) saves
# and stops. Then apply it with 5.XSeg.optional) trained mask ... - apply.
# Extra arguments go to main.py; WORKSPACE=/path overrides the workspace folder.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
"$VENV_PY" "$REPO_ROOT/main.py" train \
    --training-data-src-dir "$WORKSPACE/data_src/aligned" \
    --training-data-dst-dir "$WORKSPACE/data_dst/aligned" \
    --model-dir "$WORKSPACE/model" \
    --model XSeg \
    "$@"
