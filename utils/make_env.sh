#!/usr/bin/env bash
# Create (or update) the project's Python environment in .venv with requirements.txt and
# requirements-dev.txt, and install the project into it (editable).
#
#   bash utils/make_env.sh               # uses python3 and pip's own configuration
#   VENV=/path/to/env bash utils/make_env.sh
#   PIP_ARGS=--isolated bash utils/make_env.sh   # ignore local pip config (what CI does)
#
# Used by `install.sh --env` and by `.ci/run`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${VENV:-$root/.venv}"
python="${PYTHON:-python3}"
read -r -a pip_args <<<"${PIP_ARGS:-}"

if [ ! -x "$venv/bin/python" ]; then
  echo "creating Python environment in $venv"
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q "${pip_args[@]}" -r "$root/requirements.txt" -r "$root/requirements-dev.txt"
# The project itself, editable: its packages import from anywhere once .venv is active.
"$venv/bin/python" -m pip install -q "${pip_args[@]}" --no-deps -e "$root"
"$venv/bin/python" - <<'PY'
import torch, torchvision, timm  # noqa: F401  (fails here, not later, if torch/torchvision do not match)
print(f"environment ready: torch {torch.__version__}, torchvision {torchvision.__version__}, timm {timm.__version__}")
PY
