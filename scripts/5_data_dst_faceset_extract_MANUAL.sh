#!/usr/bin/env bash
# 5) data_dst faceset extract MANUAL: place every data_dst face by hand in a window; saves into
# data_dst/aligned.
# Extra arguments go to main.py; WORKSPACE=/path overrides the workspace folder.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
"$VENV_PY" "$REPO_ROOT/main.py" extract \
    --input-dir "$WORKSPACE/data_dst" \
    --output-dir "$WORKSPACE/data_dst/aligned" \
    --detector manual \
    --max-faces-from-image 0 \
    --output-debug \
    "$@"
