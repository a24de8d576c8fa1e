#!/usr/bin/env bash
# One-time set-up on a fresh Debian machine: system packages, then a project virtualenv.
# Idempotent; called by `make test` and `make demo`.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=()
while read -r pkg; do
  [[ -z $pkg || $pkg == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || pkgs+=("$pkg")
done < scripts/system-packages.txt
if ((${#pkgs[@]})); then
  echo "setup: installing Debian packages: ${pkgs[*]}"
  sudo_cmd=()
  [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${pkgs[@]}"
fi

PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.pullgate-installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp || constraints.txt -nt $stamp ]]; then
  echo "setup: installing pullgate and its development dependencies (pinned: constraints.txt) into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c constraints.txt -e '.[dev]'
  touch "$stamp"
fi
