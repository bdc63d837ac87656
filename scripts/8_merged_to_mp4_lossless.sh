#!/usr/bin/env bash
# 8) merged to mp4 lossless: encode data_dst/merged as a lossless workspace/result.mp4 (frame rate
# and audio of data_dst.*) and data_dst/merged_mask as a lossless result_mask.mp4.
# Extra arguments go to main.py; WORKSPACE=/path overrides the workspace folder.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
"$VENV_PY" "$REPO_ROOT/main.py" videoed video-from-sequence \
    --input-dir "$WORKSPACE/data_dst/merged" \
    --output-file "$WORKSPACE/result.mp4" \
    --reference-file "$WORKSPACE/data_dst.*" \
    --include-audio \
    --lossless \
    "$@"
"$VENV_PY" "$REPO_ROOT/main.py" videoed video-from-sequence \
    --input-dir "$WORKSPACE/data_dst/merged_mask" \
    --output-file "$WORKSPACE/result_mask.mp4" \
    --reference-file "$WORKSPACE/data_dst.*" \
    --lossless \
    "$@"
