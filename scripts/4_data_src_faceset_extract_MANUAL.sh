#!/usr/bin/env bash
# 4) data_src faceset extract MANUAL: place every data_src face by hand in a window; saves into
# data_src/aligned.
# Extra arguments go to main.py; WORKSPACE=/path overrides the workspace folder.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
"$VENV_PY" "$REPO_ROOT/main.py" extract \
    --input-dir "$WORKSPACE/data_src" \
    --output-dir "$WORKSPACE/data_src/aligned" \
    --detector manual \
    "$@"
