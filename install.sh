#!/usr/bin/env bash
# Fetch, verify and place datasets, backbone weights, model-zoo checkpoints and pre-computed maps
# (the items of data/downloads.yaml). A thin wrapper over `python -m utils.downloads`.
#
#   bash install.sh --help
#   bash install.sh --list                   # items and their state; fetches nothing
#   bash install.sh                          # asks yes/no per default group
#   bash install.sh -y                       # every default group, no questions
#   bash install.sh --only DUTS-TE,backbone  # items or groups by name ('all': everything)
#   bash install.sh --env                    # create .venv (utils/make_env.sh) and stop
#   bash install.sh --env -y                 # create .venv, then fetch the default groups
#
# Python: $VENV/bin/python (default .venv/bin/python) when it exists, else python3.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

make_env=0
help=0
asked=0
args=()
for arg in "$@"; do
  case "$arg" in
    --env) make_env=1 ;;
    -h | --help) help=1; args+=("$arg") ;;
    -y | --yes | --only | --only=* | --list) asked=1; args+=("$arg") ;;
    *) args+=("$arg") ;;
  esac
done

pick_python() {
  local venv_python="${VENV:-$root/.venv}/bin/python"
  if [ -x "$venv_python" ]; then
    echo "$venv_python"
  elif command -v python3 >/dev/null 2>&1; then
    command -v python3
  else
    echo "install.sh: no Python found: install python3, then run bash install.sh --env" >&2
    return 1
  fi
}

if [ "$make_env" -eq 1 ] && [ "$help" -eq 0 ]; then
  bash "$root/utils/make_env.sh"
  if [ "$asked" -eq 0 ]; then
    echo "environment ready; nothing to download (use -y or --only NAMES, see --help)"
    exit 0
  fi
fi

python="$(pick_python)"
PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" exec "$python" -m utils.downloads "${args[@]}"
