#!/usr/bin/env bash
# 3.optional) denoise data_dst images: temporal denoise of the workspace/data_dst frames, in
# place. Asks the strength.
# Extra arguments go to main.py; WORKSPACE=/path overrides the workspace folder.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
"$VENV_PY" "$REPO_ROOT/main.py" videoed denoise-image-sequence \
    --input-dir "$WORKSPACE/data_dst" \
    "$@"
