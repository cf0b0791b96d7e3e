#!/bin/sh
# The project's test command (README "Run the tests"; CI runs it through .ci/run).
#
# On a fresh Debian 12 machine, as root, it installs what the tests need (Cyrus
# IMAPd and its replication tools, SASL tools, shellcheck, mandoc, bmake, the
# FreeBSD rustup target), then runs formatting, lints, every test (including those
# against a real Cyrus master and replica on loopback) and a FreeBSD type check.
set -eu
cd "$(dirname "$0")/.."

say() { printf '\n==> %s\n' "$*"; }

./scripts/setup.sh

say "cargo fmt --check"
cargo fmt --all --check

say "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

say "cargo test"
cargo test --locked

say "cargo check --target x86_64-unknown-freebsd"
cargo check --locked --target x86_64-unknown-freebsd

if [ -x port/check.sh ]; then
    say "port/check.sh"
    port/check.sh
fi

say "all checks passed"
