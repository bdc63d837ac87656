#!/usr/bin/env bash
# 1) clear workspace: delete data_src, data_dst and model in the workspace and make them again, empty.
# The data_src.* and data_dst.* videos (and result videos) stay. Asks first in a terminal; without a
# terminal it deletes nothing unless given --yes.
# Extra arguments go to main.py; WORKSPACE=/path overrides the workspace folder.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
"$VENV_PY" "$REPO_ROOT/main.py" clear-workspace --workspace "$WORKSPACE" "$@"
