#!/usr/bin/env bash
# 6) train Reenact: train the landmark-driven Reenact model on data_src/aligned (data_dst/aligned gives
# the dst face shape) into workspace/model; asks the model options on the first run.
# Extra arguments go to main.py; WORKSPACE=/path overrides the workspace folder.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
"$VENV_PY" "$REPO_ROOT/main.py" train \
    --training-data-src-dir "$WORKSPACE/data_src/aligned" \
    --training-data-dst-dir "$WORKSPACE/data_dst/aligned" \
    --model-dir "$WORKSPACE/model" \
    --model Reenact \
    "$@"
