#!/usr/bin/env bash
# 5.XSeg.optional) trained mask data_dst - remove: delete the baked XSeg masks of data_dst/aligned
# (the labels stay; apply bakes them again).
# Extra arguments go to main.py; WORKSPACE=/path overrides the workspace folder.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
"$VENV_PY" "$REPO_ROOT/main.py" xseg remove \
    --input-dir "$WORKSPACE/data_dst/aligned" \
    "$@"
