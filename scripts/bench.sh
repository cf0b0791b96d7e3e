#!/bin/sh
# The benchmark (README "Benchmarks"): Cyrus's own sync_client and cyrsync,
# side by side on one real Cyrus master and replica on loopback, in one run.
# Installs what is missing (as root on Debian), builds in release mode, runs
# every workload and writes BENCHMARKS.md and BENCHMARKS.json at the
# repository root. Arguments go to the benchmark, e.g.:
#   ./scripts/bench.sh --quick            # small sizes, checks the harness
#   ./scripts/bench.sh --only W1,W6       # some workloads
#   ./scripts/bench.sh --set cyrsync_workers=8
# A whole run takes about half an hour on 2 cores; run it on a quiet machine.
set -eu
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec cargo bench --locked --bench replication -- "$@"
