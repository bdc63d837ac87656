#!/usr/bin/env bash
# 5.1) data_dst view aligned_debug results: opens data_dst/aligned_debug in the system's image viewer or file manager (xdg-open on Linux, open on
# macOS; DFL opened XnView here). WORKSPACE=/path overrides the workspace folder.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
FOLDER="$WORKSPACE/data_dst/aligned_debug"
if [ ! -d "$FOLDER" ]; then
    echo "No folder $FOLDER: run 5) data_dst faceset extract (it writes aligned_debug) first." >&2
    exit 1
fi
if command -v xdg-open >/dev/null 2>&1; then
    xdg-open "$FOLDER"
elif command -v open >/dev/null 2>&1; then
    open "$FOLDER"
else
    echo "No program to open folders with (xdg-open) was found. Open $FOLDER in your file manager or an" >&2
    echo "image viewer (gThumb, Eye of GNOME, XnView MP), or install one: sudo apt-get install xdg-utils" >&2
    exit 1
fi
