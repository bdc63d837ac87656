#!/usr/bin/env bash
# 4.1) data_src view aligned result: opens data_src/aligned in the system's image viewer or file manager (xdg-open on Linux, open on
# macOS; DFL opened XnView here). WORKSPACE=/path overrides the workspace folder.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
source "$(dirname "${BASH_SOURCE[0]}")/_view.sh"
FOLDER="$WORKSPACE/data_src/aligned"
open_folder "$FOLDER" "run 4) data_src faceset extract first."
