#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv and print its python.
# Sourced by run_all.sh and run_tests.sh, so a fresh clone needs no other set-up step.
# torch is installed FIRST and then pinned as a constraint: otherwise a dependency could pull a
# multi-GB CUDA build (see docs/setup-notes.md).
#
# The stamp ($venv/.irec-stamp) records the pyproject.toml hash AND the checkout the editable install points
# at: an environment shared through IREC_VENV by several checkouts is rebuilt when the pins change, and only
# re-points its editable install (seconds, no dependencies) when another checkout uses it, so it never keeps
# running a checkout that was moved or deleted ("No module named 'irec'").
#   tools/bootstrap.sh          # build or refresh as needed; prints the python
#   tools/bootstrap.sh --stamp  # print the stamp this checkout wants, change nothing
#   tools/bootstrap.sh --plan   # print what it would do: build, reinstall (this checkout) or ok; change nothing
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
venv="${IREC_VENV:-$root/.venv}"
stamp="$venv/.irec-stamp"
want="$(sha256sum "$root/pyproject.toml" | cut -c1-16) $root"
have="$(cat "$stamp" 2>/dev/null || true)"
if [[ ! -x "$venv/bin/python" || "${have%% *}" != "${want%% *}" ]]; then
  plan=build
elif [[ "$have" != "$want" ]]; then
  plan=reinstall
else
  plan=ok
fi
case "${1:-}" in
  --stamp) echo "$want"; exit 0 ;;
  --plan) echo "$plan"; exit 0 ;;
  "") ;;
  *) echo "usage: $0 [--stamp|--plan]" >&2; exit 2 ;;
esac
if [[ "$plan" == build ]]; then
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
elif [[ "$plan" == reinstall ]]; then
  echo "[bootstrap] pointing the environment $venv at this checkout, $root" >&2
  "$venv/bin/python" -m pip install -q --no-deps -e "$root" >&2
  echo "$want" > "$stamp"
fi
echo "$venv/bin/python"
