#!/usr/bin/env bash
# 7) merge Reenact: the src face making each data_dst frame's expression and head turn, put onto the
# frame: data_dst/merged and data_dst/merged_mask. Interactive window on a terminal; batch with the
# default settings otherwise.
# Extra arguments go to main.py; WORKSPACE=/path overrides the workspace folder.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
"$VENV_PY" "$REPO_ROOT/main.py" merge \
    --input-dir "$WORKSPACE/data_dst" \
    --output-dir "$WORKSPACE/data_dst/merged" \
    --output-mask-dir "$WORKSPACE/data_dst/merged_mask" \
    --aligned-dir "$WORKSPACE/data_dst/aligned" \
    --model-dir "$WORKSPACE/model" \
    --model Reenact \
    "$@"
