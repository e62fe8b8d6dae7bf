#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv and print its python.
# Sourced by run_all.sh and run_tests.sh, so a fresh clone needs no other set-up step.
# torch is installed FIRST and then pinned as a constraint: otherwise a dependency could pull a
# multi-GB CUDA build (see docs/setup-notes.md).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${IREC_VENV:-$root/.venv}"
stamp="$venv/.irec-stamp"
want="$(sha256sum "$root/pyproject.toml" | cut -c1-16)"
if [[ ! -x "$venv/bin/python" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "[bootstrap] building environment in $venv (about 2 minutes, once)" >&2
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
  torch_pin="$(grep -o '"torch==[^"]*"' "$root/pyproject.toml" | tr -d '"')"
  "$venv/bin/python" -m pip install -q "$torch_pin" >&2
  constraints="$(mktemp)"
  echo "$torch_pin" > "$constraints"
  "$venv/bin/python" -m pip install -q -c "$constraints" -e "$root[dev]" >&2
  rm -f "$constraints"
  "$venv/bin/python" -m pip check >&2
  echo "$want" > "$stamp"
fi
echo "$venv/bin/python"
