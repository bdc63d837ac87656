#!/usr/bin/env bash
# 4.2) data_src sort: sort or prune data_src/aligned by a measure (blur, pose, histogram, best
# faces ...): a menu.
# Extra arguments go to main.py; WORKSPACE=/path overrides the workspace folder.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
"$VENV_PY" "$REPO_ROOT/main.py" sort \
    --input-dir "$WORKSPACE/data_src/aligned" \
    "$@"
