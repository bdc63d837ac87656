#!/usr/bin/env bash
# 5) data_dst faceset extract: detect, align and save every face of the data_dst frames into
# data_dst/aligned, with debug images in data_dst/aligned_debug. Asks face type, image size and
# jpeg quality.
# Extra arguments go to main.py; WORKSPACE=/path overrides the workspace folder.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
"$VENV_PY" "$REPO_ROOT/main.py" extract \
    --input-dir "$WORKSPACE/data_dst" \
    --output-dir "$WORKSPACE/data_dst/aligned" \
    --detector centerface \
    --max-faces-from-image 0 \
    --output-debug \
    "$@"
