#!/usr/bin/env bash
# 4.3) import DFL model: turn a DeepFaceLab SAEHD model in workspace/model (NAME_SAEHD_data.dat
# and NAME_SAEHD_*.npy, copied from DFL's workspace/model) into this toolkit's SAEHD model in the
# same folder; DFL's files are only read. Then train (6) and merge (7) go on from DFL's iteration.
# Extra arguments go to main.py (--name NAME when the folder holds several DFL models);
# WORKSPACE=/path overrides the workspace folder.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
"$VENV_PY" "$REPO_ROOT/main.py" importdfl \
    --input-dir "$WORKSPACE/model" \
    --model-dir "$WORKSPACE/model" \
    "$@"
