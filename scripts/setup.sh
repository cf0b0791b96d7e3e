#!/bin/sh
# Installs what cyrsync's tests and demo need on Debian (as root): Cyrus IMAPd and
# its replication tools, SASL tools, shellcheck, mandoc, bmake, tmux, and the
# FreeBSD rustup target. Does nothing for what is already there.
set -eu

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
    printf "==> installing%s\n" "$missing"
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

