#!/usr/bin/env bash
# 5.2) data_dst sort: sort or prune data_dst/aligned by a measure: a menu. Merging does not depend
# on the names.
# Extra arguments go to main.py; WORKSPACE=/path overrides the workspace folder.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
"$VENV_PY" "$REPO_ROOT/main.py" sort \
    --input-dir "$WORKSPACE/data_dst/aligned" \
    "$@"
