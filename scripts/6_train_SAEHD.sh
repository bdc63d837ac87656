#!/usr/bin/env bash
# 6) train SAEHD: train SAEHD on data_src/aligned and data_dst/aligned into workspace/model; asks
# the model options on the first run. Pretraining reads any aligned faces in
# workspace/pretrain_faces.
# Extra arguments go to main.py; WORKSPACE=/path overrides the workspace folder.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
"$VENV_PY" "$REPO_ROOT/main.py" train \
    --training-data-src-dir "$WORKSPACE/data_src/aligned" \
    --training-data-dst-dir "$WORKSPACE/data_dst/aligned" \
    --pretraining-data-dir "$WORKSPACE/pretrain_faces" \
    --model-dir "$WORKSPACE/model" \
    --model SAEHD \
    "$@"
