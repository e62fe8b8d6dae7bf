#!/usr/bin/env bash
# Run the whole irec suite (creates .venv on first use): executes notebooks/NN_*.ipynb with papermill into
# results/executed/<profile>/, regenerating results/ and figures/. Re-running resumes; see --help.
#   ./run_all.sh                   # default cpu profile
#   ./run_all.sh --profile smoke   # a few minutes: everything, tiny
#   ./run_all.sh --only 03 --force
#   ./run_all.sh --list            # the steps and how long each took last time
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py="$("$root/tools/bootstrap.sh")"
if [[ -z "${IREC_DATA:-}" && -d "$root/../shared/data" ]]; then
  export IREC_DATA="$(cd "$root/../shared/data" && pwd)"
fi
export MPLBACKEND="${MPLBACKEND:-Agg}"
cd "$root"
exec "$py" -m irec.evaluation.suite "$@"
