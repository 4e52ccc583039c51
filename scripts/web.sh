#!/usr/bin/env bash
# Set up the environment (runtime + Gradio) and serve the web demo; arguments go to `python -m web`
# (--help lists them), e.g. `bash scripts/web.sh --port 7860 --concurrency 2`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/env.sh" web
cd "$root"
exec "${GFP_VENV:-$root/.venv}/bin/python" -m web "$@"
