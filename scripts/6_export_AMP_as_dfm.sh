#!/usr/bin/env bash
# 6) export AMP as dfm: write the trained AMP model of workspace/model as
# workspace/model/NAME_AMP.dfm, the file DeepFaceLive (and FaceFusion's deep swapper) runs; merge
# takes it too. Asks "Export quantized" (float16 weights, half the file) on a terminal; no without one.
# Extra arguments go to main.py (--force-model-name NAME, --quantize, --output-file FILE);
# WORKSPACE=/path overrides the workspace folder.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
"$VENV_PY" "$REPO_ROOT/main.py" exportdfm \
    --model-dir "$WORKSPACE/model" \
    --model AMP \
    "$@"
