#!/usr/bin/env bash
# 5) data_dst faceset MANUAL RE-EXTRACT DELETED ALIGNED_DEBUG: DFL's clean-up loop. Delete the images
# of badly aligned frames from data_dst/aligned_debug (see 5.1) view aligned_debug), then run this: those
# frames open in the manual window (old face pre-placed); their old faces move to data_dst/aligned_trash.
# Extra arguments go to main.py; WORKSPACE=/path overrides the workspace folder.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
"$VENV_PY" "$REPO_ROOT/main.py" extract \
    --input-dir "$WORKSPACE/data_dst" \
    --output-dir "$WORKSPACE/data_dst/aligned" \
    --detector manual \
    --manual-output-debug-fix \
    "$@"
