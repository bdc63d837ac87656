#!/usr/bin/env bash
# 4.2) data_src util faceset pack: pack data_src/aligned into one faceset.pak (training reads it
# directly).
# Extra arguments go to main.py; WORKSPACE=/path overrides the workspace folder.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
"$VENV_PY" "$REPO_ROOT/main.py" util \
    --input-dir "$WORKSPACE/data_src/aligned" \
    --pack-faceset \
    "$@"
