#!/usr/bin/env bash
# Set up the runtime environment and restore the faces in photos and videos:  scripts/restore.sh [FILE|FOLDER...]
# Without arguments it restores the bundled sample photo into results/ (upscale 2, as official).
# GFP_MODEL picks the model (default v1.4). When its weights cannot be had (no internet, nothing
# in the model folders), the run says so and uses seeded random weights in the official format
# instead, so the loading and restoration path still runs end to end; such output is not a face.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/env.sh"
py="${GFP_VENV:-$root/.venv}/bin/python"
model="${GFP_MODEL:-v1.4}"
inputs=("$@")
[[ ${#inputs[@]} -eq 0 ]] && inputs=("$root/assets/astronaut.jpg")

if [[ -z "${HF_HUB_OFFLINE:-}" ]] && ! "$py" - <<'PY'
import socket, sys
try:
    socket.create_connection(("huggingface.co", 443), timeout=5).close()
except OSError:
    sys.exit(1)
PY
then
  echo "huggingface.co is not reachable: working offline" >&2
  export HF_HUB_OFFLINE=1
fi

rc=0; "$py" -m gfp_core download "$model" --quiet || rc=$?
if [[ $rc -eq 3 ]]; then  # 3: the weights are missing (other failures stop the run)
  smoke="${GFP_HOME:-$HOME/.cache/gfp_core}/smoke/${model}-random.pth"
  echo "!! the $model weights are not available here; restoring with SEEDED RANDOM weights ($smoke)." >&2
  echo "!! the output shows that the pipeline runs, not a restored face. Put the real file in a model folder." >&2
  [[ -f "$smoke" ]] || "$py" -m gfp_core random-weights "$model" "$smoke"
  model="$smoke"
elif [[ $rc -ne 0 ]]; then
  exit $rc
fi
exec "$py" -m gfp_core restore "${inputs[@]}" --model "$model" -o "${GFP_OUTPUT:-$root/results}" --overwrite
