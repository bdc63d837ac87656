#!/usr/bin/env bash
# 5.XSeg) data_src mask - remove: delete the XSeg labels (polygons) of every face in
# data_src/aligned. Asks first; --yes deletes without asking.
# Extra arguments go to main.py; WORKSPACE=/path overrides the workspace folder.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
"$VENV_PY" "$REPO_ROOT/main.py" xseg remove-labels \
    --input-dir "$WORKSPACE/data_src/aligned" \
    "$@"
