#!/usr/bin/env bash
# 5.1) data_dst view aligned_debug results: opens data_dst/aligned_debug in the system's image viewer or file manager (xdg-open on Linux, open on
# macOS; DFL opened XnView here). WORKSPACE=/path overrides the workspace folder.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
source "$(dirname "${BASH_SOURCE[0]}")/_view.sh"
FOLDER="$WORKSPACE/data_dst/aligned_debug"
open_folder "$FOLDER" "run 5) data_dst faceset extract (it writes aligned_debug) first."
