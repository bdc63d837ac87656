#!/usr/bin/env bash
# 2) extract images from video data_src: write the frames of workspace/data_src.* (any video
# extension) into workspace/data_src. Asks the frame rate (0 = every frame) and the image format.
# Extra arguments go to main.py; WORKSPACE=/path overrides the workspace folder.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
"$VENV_PY" "$REPO_ROOT/main.py" videoed extract-video \
    --input-file "$WORKSPACE/data_src.*" \
    --output-dir "$WORKSPACE/data_src" \
    "$@"
