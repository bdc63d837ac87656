#!/usr/bin/env bash
# 5.XSeg.generic) data_src whole faceset generic mask: give every face of data_src/aligned an
# XSeg mask in one step, without labels: train XSeg --generic on the faceset itself (3000
# iterations into workspace/model; targets made from the landmarks with synthetic occluders; any
# labels are used too), then apply it. Extra arguments go to the training (e.g. --target-iteration
# 500 for a quicker, rougher mask); WORKSPACE=/path overrides the workspace folder.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
"$VENV_PY" "$REPO_ROOT/main.py" train \
    --training-data-src-dir "$WORKSPACE/data_src/aligned" \
    --training-data-dst-dir "$WORKSPACE/data_src/aligned" \
    --model-dir "$WORKSPACE/model" \
    --model XSeg \
    --generic \
    --silent-start \
    --target-iteration 3000 \
    "$@"
"$VENV_PY" "$REPO_ROOT/main.py" xseg apply \
    --input-dir "$WORKSPACE/data_src/aligned" \
    --model-dir "$WORKSPACE/model"
