#!/usr/bin/env bash
# Sourced by the set-up scripts: make (or reuse) the repo's .venv and install a requirements file into it.
# Usage: source scripts/_venv.sh; ensure_venv requirements.txt
# A copy of each installed requirements file is kept in .venv/; when it still matches, nothing is
# reinstalled, so a second run starts at once.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO_ROOT/.venv"
VENV_PY="$VENV/bin/python"

find_python311() {
    for candidate in "${PYTHON:-}" python3.11 python3 python; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
           "$candidate" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
            command -v "$candidate"; return 0
        fi
    done
    return 1
}

ensure_venv() {
    local req
    if [ ! -x "$VENV_PY" ]; then
        local py
        py="$(find_python311)" || { echo "Error: Python 3.11 not found (set PYTHON=/path/to/python3.11)" >&2; return 1; }
        echo "Creating $VENV with $py"
        if ! "$py" -m venv "$VENV"; then
            echo "Error: could not create a virtual environment; on Debian/Ubuntu: sudo apt install python3.11-venv" >&2
            return 1
        fi
        "$VENV_PY" -m pip install --quiet --upgrade pip || return 1
    fi
    for req in "$@"; do
        local stamp="$VENV/installed-$(basename "$req")"
        if [ -f "$stamp" ] && cmp -s "$REPO_ROOT/$req" "$stamp" && cmp -s "$REPO_ROOT/requirements.txt" "$VENV/installed-requirements.txt.base"; then
            continue
        fi
        echo "Installing $req into $VENV (first run takes a few minutes)"
        "$VENV_PY" -m pip install --quiet --disable-pip-version-check -r "$REPO_ROOT/$req" || return 1
        cp "$REPO_ROOT/$req" "$stamp"
        cp "$REPO_ROOT/requirements.txt" "$VENV/installed-requirements.txt.base"
    done
}
