#!/usr/bin/env bash
# 3) cut video (drop video on me): cut a time range out of the video dropped on this script (or
# given as the first argument) into NAME_cut.EXT next to it. Asks the start and end time, audio
# track and bitrate.
# Extra arguments go to main.py; WORKSPACE=/path overrides the workspace folder.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
if [ $# -eq 0 ]; then echo "Usage: $0 VIDEO [cut-video options]" >&2; exit 2; fi
"$VENV_PY" "$REPO_ROOT/main.py" videoed cut-video \
    --input-file "$@"
