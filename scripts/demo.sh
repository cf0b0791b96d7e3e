#!/bin/sh
# README's "Try it" command: installs what is missing (as root on Debian), builds
# cyrsync and runs examples/demo.rs against a local Cyrus master and replica.
# With --tui, the dashboard runs in this terminal while mail arrives (q leaves).
set -eu
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --quiet --bins --examples
exec ./target/debug/examples/demo "$@"
