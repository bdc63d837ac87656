#!/usr/bin/env bash
# 4.2) data_src util faceset metadata save: save the face metadata of data_src/aligned to
# faceset_metadata.json before editing the images in another program (keep the file names).
# Extra arguments go to main.py; WORKSPACE=/path overrides the workspace folder.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
"$VENV_PY" "$REPO_ROOT/main.py" util \
    --input-dir "$WORKSPACE/data_src/aligned" \
    --save-faceset-metadata \
    "$@"
