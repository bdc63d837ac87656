#!/usr/bin/env bash
# Sourced by the view scripts (4.1, 5.1): open_folder FOLDER HINT opens FOLDER in the system's image viewer
# or file manager (xdg-open on Linux, open on macOS; DFL opened XnView here), or says HINT when it is missing.
open_folder() {
    local folder="$1" hint="$2"
    if [ ! -d "$folder" ]; then
        echo "No folder $folder: $hint" >&2
        exit 1
    fi
    if command -v xdg-open >/dev/null 2>&1; then
        xdg-open "$folder"
    elif command -v open >/dev/null 2>&1; then
        open "$folder"
    else
        echo "No program to open folders with (xdg-open) was found. Open $folder in your file manager or an" >&2
        echo "image viewer (gThumb, Eye of GNOME, XnView MP), or install one: sudo apt-get install xdg-utils" >&2
        exit 1
    fi
}
