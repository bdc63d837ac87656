#!/usr/bin/env bash
# 9) live: swap faces in real time from camera 0 with the workspace model (the most recently saved one in
# workspace/model; --model Quick96, SAEHD, ... chooses). A window shows the swapped stream; Tab lists its keys,
# Enter saves the settings as a merge config, Esc ends.
# Extra arguments go to main.py (e.g. --input video.mp4 --output live.mp4, --virtual-camera, --no-window);
# WORKSPACE=/path overrides the workspace folder.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
"$VENV_PY" "$REPO_ROOT/main.py" live \
    --model-dir "$WORKSPACE/model" \
    --input 0 \
    "$@"
