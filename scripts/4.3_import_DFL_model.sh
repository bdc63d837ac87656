#!/usr/bin/env bash
# 4.3) import DFL model: turn a DeepFaceLab SAEHD or Quick96 model (NAME_SAEHD_data.dat and
# NAME_SAEHD_*.npy) or DFL's XSeg (XSeg_data.dat, XSeg_256.npy) in workspace/model, copied from DFL's
# workspace/model, into this toolkit's model in the same folder; DFL's files are only read. Then train
# (6, 5.XSeg) and merge (7) go on from DFL's iteration. AMP models cannot be imported yet.
# Extra arguments go to main.py (--name NAME when the folder holds several DFL models, XSeg for XSeg);
# WORKSPACE=/path overrides the workspace folder.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
"$VENV_PY" "$REPO_ROOT/main.py" importdfl \
    --input-dir "$WORKSPACE/model" \
    --model-dir "$WORKSPACE/model" \
    "$@"
