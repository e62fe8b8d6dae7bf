#!/usr/bin/env bash
# Run the test suite (creates .venv on first use). Extra arguments go to pytest, e.g. ./run_tests.sh -k coder
# Datasets are read from $IREC_DATA (default: ../shared/data beside the checkout, if present).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py="$("$root/tools/bootstrap.sh")"
if [[ -z "${IREC_DATA:-}" && -d "$root/../shared/data" ]]; then
  export IREC_DATA="$(cd "$root/../shared/data" && pwd)"
fi
cd "$root"
exec "$py" -m pytest -n 2 "$@"
