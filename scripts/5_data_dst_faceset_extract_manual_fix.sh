#!/usr/bin/env bash
# 5) data_dst faceset extract + manual fix: automatic data_dst extraction, then a window to place
# the faces by hand in the frames where none was found.
# Extra arguments go to main.py; WORKSPACE=/path overrides the workspace folder.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
"$VENV_PY" "$REPO_ROOT/main.py" extract \
    --input-dir "$WORKSPACE/data_dst" \
    --output-dir "$WORKSPACE/data_dst/aligned" \
    --detector centerface \
    --max-faces-from-image 0 \
    --output-debug \
    --manual-fix \
    "$@"
