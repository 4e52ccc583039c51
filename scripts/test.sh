#!/usr/bin/env bash
# Set up the test environment and run the whole test suite (extra arguments go to pytest).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/env.sh" test
cd "$root"
exec "${GFP_VENV:-$root/.venv}/bin/python" -m pytest "$@"
