#!/usr/bin/env bash
# 6) train Original: train Original (the classic 64 px autoencoder) on data_src/aligned and data_dst/aligned
# into workspace/model: the smallest model that gives a recognisable swap, quick on a CPU.
# Extra arguments go to main.py; WORKSPACE=/path overrides the workspace folder.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
"$VENV_PY" "$REPO_ROOT/main.py" train \
    --training-data-src-dir "$WORKSPACE/data_src/aligned" \
    --training-data-dst-dir "$WORKSPACE/data_dst/aligned" \
    --model-dir "$WORKSPACE/model" \
    --model Original \
    "$@"
