#!/usr/bin/env bash
# 3) extract images from video data_dst FULL FPS: write every frame of workspace/data_dst.* into
# workspace/data_dst. Asks the image format.
# Extra arguments go to main.py; WORKSPACE=/path overrides the workspace folder.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
"$VENV_PY" "$REPO_ROOT/main.py" videoed extract-video \
    --input-file "$WORKSPACE/data_dst.*" \
    --output-dir "$WORKSPACE/data_dst" \
    --fps 0 \
    "$@"
