#!/usr/bin/env bash
# Create or update the project's virtual environment.
#   scripts/env.sh            runtime dependencies
#   scripts/env.sh web        + the web demo's (requirements-web.txt: Gradio)
#   scripts/env.sh train      + the trainer's (requirements-train.txt)
#   scripts/env.sh test       + web demo, trainer, test dependencies and the official implementation (reference only)
# The environment lives in $GFP_VENV (default: .venv in the checkout). It is rebuilt only when the
# requirement files change; the project itself is (re)installed in editable mode every time.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
profile="${1:-runtime}"
venv="${GFP_VENV:-$root/.venv}"
python="${PYTHON:-python3}"

reqs=("$root/requirements.txt")
[[ "$profile" == web || "$profile" == test ]] && reqs+=("$root/requirements-web.txt")
[[ "$profile" == train || "$profile" == test ]] && reqs+=("$root/requirements-train.txt")
[[ "$profile" == test ]] && reqs+=("$root/requirements-test.txt" "$root/requirements-official.txt")
stamp="$profile $(cat "${reqs[@]}" | sha256sum | cut -d' ' -f1)"

if [[ ! -x "$venv/bin/python" ]] || [[ "$(cat "$venv/.gfp-stamp" 2>/dev/null)" != "$stamp" ]]; then
  echo "setting up $venv ($profile dependencies; the first time downloads PyTorch, a few GB)" >&2
  "$python" -m venv "$venv"
  pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
  "${pip[@]}" install --upgrade pip "setuptools>=77" wheel
  "${pip[@]}" install -r "$root/requirements.txt"
  if [[ "$profile" == web || "$profile" == test ]]; then
    "${pip[@]}" install -r "$root/requirements-web.txt"
  fi
  if [[ "$profile" == train || "$profile" == test ]]; then
    "${pip[@]}" install -r "$root/requirements-train.txt"
  fi
  if [[ "$profile" == test ]]; then
    "${pip[@]}" install -r "$root/requirements-test.txt"
    "${pip[@]}" install --no-deps --no-build-isolation -r "$root/requirements-official.txt"
  fi
  echo "$stamp" > "$venv/.gfp-stamp"
fi
"$venv/bin/python" -m pip --disable-pip-version-check -q install --no-deps --no-build-isolation -e "$root"

# the browser tests drive Debian's Chromium (playwright's own browser downloads are not used)
if [[ "$profile" == test ]] && ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium
fi
