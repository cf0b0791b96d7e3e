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

DEB_PACKAGES="cyrus-imapd cyrus-replication cyrus-admin cyrus-clients sasl2-bin
libsasl2-modules shellcheck mandoc bmake tmux"

install_packages() {
    missing=""
    for p in $DEB_PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "missing packages:$missing (install them as root with apt-get)" >&2
        exit 1
    fi
    say "installing$missing"
    # Keep the package scripts from starting a system-wide Cyrus.
    created_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        created_policy=yes
    fi
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    [ -n "$created_policy" ] && rm -f /usr/sbin/policy-rc.d
    return 0
}

if command -v dpkg-query >/dev/null 2>&1; then
    install_packages
fi

if command -v rustup >/dev/null 2>&1; then
    rustup target list --installed | grep -qx x86_64-unknown-freebsd ||
        rustup target add x86_64-unknown-freebsd
fi

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
