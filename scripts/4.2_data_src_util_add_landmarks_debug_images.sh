#!/usr/bin/env bash
# 4.2) data_src util add landmarks debug images: write data_src/aligned_landmarks_debug with the
# landmarks drawn on each face.
# Extra arguments go to main.py; WORKSPACE=/path overrides the workspace folder.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
"$VENV_PY" "$REPO_ROOT/main.py" util \
    --input-dir "$WORKSPACE/data_src/aligned" \
    --add-landmarks-debug-images \
    "$@"
