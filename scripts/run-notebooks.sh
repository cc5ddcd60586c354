#!/usr/bin/env bash
# Runs every docs/*.ipynb headless with dotnet-repl against the library built from this repository.
# Exit status: the number of notebooks that failed (0 when all ran cleanly).
# Usage: scripts/run-notebooks.sh   (the Release build must exist: the notebooks load SparseAttention.Cli/bin/Release/net10.0)
set -uo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
failures=0
for notebook in docs/*.ipynb; do
  [ -e "$notebook" ] || continue
  echo "notebook: $notebook"
  if (cd docs && timeout 1200 dotnet repl --run "$(basename "$notebook")" --exit-after-run --output-path "$out/$(basename "$notebook")" </dev/null); then
    echo "notebook passed: $notebook"
  else
    echo "notebook FAILED: $notebook"
    failures=$((failures + 1))
  fi
done
exit "$failures"
