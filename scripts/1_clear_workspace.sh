#!/usr/bin/env bash
# 1) clear workspace: delete data_src, data_dst and model in the workspace and make them again, empty.
# The data_src.* and data_dst.* videos (and result videos) stay. Asks first when run in a terminal.
# WORKSPACE=/path overrides the workspace folder.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
if [ -t 0 ]; then
    read -r -p "Delete data_src, data_dst and model in $WORKSPACE? (y/n) [n]: " answer
    case "$answer" in
        y|Y|yes) ;;
        *) echo "Nothing deleted."; exit 0 ;;
    esac
fi
rm -rf "$WORKSPACE/data_src"
rm -rf "$WORKSPACE/data_dst"
rm -rf "$WORKSPACE/model"
mkdir -p "$WORKSPACE/data_src/aligned"
mkdir -p "$WORKSPACE/data_dst/aligned"
mkdir -p "$WORKSPACE/model"
echo "Workspace cleared: $WORKSPACE"
