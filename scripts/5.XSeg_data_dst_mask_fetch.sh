#!/usr/bin/env bash
# 5.XSeg) data_dst mask - fetch: copy the labelled faces of data_dst/aligned to
# data_dst/aligned_xseg (a backup of the labels, and a faceset of labelled faces only).
# Extra arguments go to main.py; WORKSPACE=/path overrides the workspace folder.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
"$VENV_PY" "$REPO_ROOT/main.py" xseg fetch \
    --input-dir "$WORKSPACE/data_dst/aligned" \
    "$@"
