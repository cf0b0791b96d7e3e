#!/bin/sh
# Checks the FreeBSD packaging on any host (the real gates, portlint and
# poudriere testport, need FreeBSD; see the project's freebsd-port.md):
#   - rc.d/cyrsync.in: shellcheck and sh -n, before and after %%...%%
#     expansion; PROVIDE, name and file name agree;
#   - the port's copies of rc.d/cyrsync.in and pkg-descr are identical;
#   - man/cyrsync.8: mandoc -Tlint -W warning;
#   - the port Makefile parses with bmake (stub bsd.port.mk), DISTVERSION is
#     Cargo.toml's version, and its install targets, run against this source
#     tree, stage every file of the packing list;
#   - Makefile.crates and distinfo match Cargo.lock (update-crates.sh --check);
#   - pkg-descr: at most 80 columns, no WWW: line; COMMENT as portlint wants.
# Needs shellcheck, mandoc and bmake (scripts/setup.sh installs them).
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
portdir="$root/port/mail/cyrsync"
cd "$root"

failures=0
fail() {
	echo "FAIL: $*" >&2
	failures=$((failures + 1))
}
ok() { echo "ok: $*"; }

for tool in shellcheck mandoc bmake; do
	command -v "$tool" >/dev/null 2>&1 || {
		echo "port/check.sh: $tool is missing (run scripts/setup.sh)" >&2
		exit 69
	}
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The substitutions the port makes: bsd.port.mk's default SUB_LIST plus the
# Makefile's SUB_LIST+=CYRUS_USER.
expand() {
	sed -e 's|%%PREFIX%%|/usr/local|g' -e 's|%%LOCALBASE%%|/usr/local|g' \
		-e 's|%%ETCDIR%%|/usr/local/etc/cyrsync|g' \
		-e 's|%%DATADIR%%|/usr/local/share/cyrsync|g' \
		-e 's|%%EXAMPLESDIR%%|/usr/local/share/examples/cyrsync|g' \
		-e 's|%%CYRUS_USER%%|cyrus|g' "$1"
}

# --- rc.d script ---------------------------------------------------------
rc=rc.d/cyrsync.in
expand "$rc" >"$tmp/cyrsync"
if left=$(grep -o '%%[A-Z_]*%%' "$tmp/cyrsync"); then
	fail "$rc: placeholders the port does not substitute: $left"
fi
if shellcheck -s sh -S style "$rc" && shellcheck -s sh -S style "$tmp/cyrsync" &&
	sh -n "$tmp/cyrsync"; then
	ok "$rc: shellcheck -S style and sh -n"
else
	fail "$rc: shellcheck or sh -n"
fi
provide=$(sed -n 's/^# PROVIDE: *//p' "$rc")
rcname=$(sed -n 's/^name=//p' "$rc")
if [ "$provide" = cyrsync ] && [ "$rcname" = cyrsync ] &&
	grep -q '^# REQUIRE:.*LOGIN' "$rc" && grep -q '^# KEYWORD: shutdown' "$rc" &&
	[ "$(tail -n 1 "$rc")" = "run_rc_command \"\$1\"" ]; then
	ok "$rc: PROVIDE, name, REQUIRE: LOGIN, KEYWORD: shutdown, run_rc_command"
else
	fail "$rc: PROVIDE ($provide) and name ($rcname) must be cyrsync; needs REQUIRE: LOGIN, KEYWORD: shutdown, run_rc_command last"
fi
same_as() {
	if cmp -s "$1" "$portdir/$2"; then
		ok "port/mail/cyrsync/$2 is $1"
	else
		fail "port/mail/cyrsync/$2 differs from $1: cp $1 port/mail/cyrsync/$2"
	fi
}
same_as rc.d/cyrsync.in files/cyrsync.in
same_as pkg-descr pkg-descr
if grep -o '%%[A-Z_]*%%' "$portdir/files/pkg-message.in" |
	grep -qv '%%PREFIX%%\|%%EXAMPLESDIR%%'; then
	fail "files/pkg-message.in uses a placeholder the port does not substitute"
fi
if shellcheck -S style port/check.sh port/update-crates.sh; then
	ok "port/*.sh: shellcheck"
else
	fail "port/*.sh: shellcheck"
fi

# --- man page ------------------------------------------------------------
if mandoc -Tlint -W warning man/cyrsync.8; then
	ok "man/cyrsync.8: mandoc -Tlint -W warning"
else
	fail "man/cyrsync.8: mandoc -Tlint -W warning"
fi

# --- port Makefile -------------------------------------------------------
# bmake needs a sys.mk; the stub bsd.port.mk reads Makefile.crates as
# Mk/Uses/cargo.mk does and defines what the install targets use, pointing
# WRKSRC at this source tree and STAGEDIR at a scratch directory.
# The stage tree starts with the directories of BSD.local.dist (mtree).
mkdir -p "$tmp/mk" "$tmp/stage/usr/local/share/man/man8" \
	"$tmp/stage/usr/local/share/examples"
: >"$tmp/mk/sys.mk"
cat >"$tmp/mk/bsd.port.mk" <<MK
.sinclude "\${.CURDIR}/Makefile.crates"
PREFIX=		/usr/local
WRKSRC=		$root
STAGEDIR=	$tmp/stage
EXAMPLESDIR=	\${PREFIX}/share/examples/\${PORTNAME}
MKDIR=		mkdir -p
INSTALL_MAN=	install -m 0444
INSTALL_DATA=	install -m 0444
MK
# -V '${VAR:M*}' (not -V VAR) so that bmake expands the value; :M*
# splits the words and joins them with one space.
set --
for v in PORTNAME DISTVERSION CATEGORIES USES USE_RC_SUBR USERS GROUPS COMMENT \
	PLIST_FILES PORTEXAMPLES CARGO_CRATES; do
	set -- "$@" -V "\${$v:M*}"
done
if (cd "$portdir" && bmake -m "$tmp/mk" "$@") >"$tmp/vars" 2>"$tmp/bmake.err"; then
	ok "port Makefile parses with bmake"
else
	fail "port Makefile does not parse: $(cat "$tmp/bmake.err")"
fi
var() { sed -n "$1p" "$tmp/vars"; }
cargo_version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[ "$(var 1)" = cyrsync ] || fail "PORTNAME is '$(var 1)'"
if [ "$(var 2)" = "$cargo_version" ]; then
	ok "DISTVERSION $(var 2) is Cargo.toml's version"
else
	fail "DISTVERSION $(var 2) differs from Cargo.toml's version $cargo_version"
fi
[ "$(var 3)" = mail ] || fail "CATEGORIES is '$(var 3)', not mail"
[ "$(var 4)" = cargo ] || fail "USES is '$(var 4)'"
[ "$(var 5)" = cyrsync ] || fail "USE_RC_SUBR is '$(var 5)'"
if [ "$(var 6)" != cyrus ] || [ "$(var 7)" != cyrus ]; then
	fail "USERS/GROUPS are '$(var 6)'/'$(var 7)', not cyrus"
fi
comment=$(var 8)
case "$comment" in
[A-Z]*[!.]) ;;
*) fail "COMMENT must start with a capital and not end with a period: $comment" ;;
esac
[ "${#comment}" -le 70 ] || fail "COMMENT is longer than 70 characters"
examples=$(cd snippets && find . -type f | sed 's|^\./||' | sort | tr '\n' ' ')
if [ "$(var 10 | tr ' ' '\n' | sort | tr '\n' ' ')" = "$examples" ]; then
	ok "PORTEXAMPLES lists snippets/: $examples"
else
	fail "PORTEXAMPLES ($(var 10)) differs from snippets/ ($examples)"
fi
crates_lock=$(awk '
	/^\[\[package\]\]$/ { if (src) printf "%s%s-%s", sep, n, v; if (src) sep = " "; src = 0 }
	/^name = / { n = $3; gsub(/"/, "", n) }
	/^version = / { v = $3; gsub(/"/, "", v) }
	/^source = "registry\+https:\/\/github.com\/rust-lang\/crates.io-index"$/ { src = 1 }
	END { if (src) printf "%s%s-%s", sep, n, v; print "" }' Cargo.lock)
if [ "$(var 11)" = "$crates_lock" ]; then
	ok "CARGO_CRATES as bmake reads it: $(echo "$crates_lock" | wc -w) crates, as in Cargo.lock"
else
	fail "CARGO_CRATES as bmake reads it differs from Cargo.lock"
fi
if (cd "$portdir" && bmake -m "$tmp/mk" post-install post-install-EXAMPLES-on) \
	>"$tmp/install.log" 2>&1; then
	missing=""
	for f in $(var 9); do
		case "$f" in
		bin/*) continue ;; # installed by cargo install
		*.gz) f=${f%.gz} ;; # the framework compresses man pages
		esac
		[ -f "$tmp/stage/usr/local/$f" ] || missing="$missing $f"
	done
	for f in $(var 10); do
		[ -f "$tmp/stage/usr/local/share/examples/cyrsync/$f" ] ||
			missing="$missing share/examples/cyrsync/$f"
	done
	if [ -z "$missing" ]; then
		ok "post-install targets stage the man page and every example"
	else
		fail "not staged by post-install:$missing"
	fi
else
	fail "post-install targets failed: $(cat "$tmp/install.log")"
fi

# --- crates --------------------------------------------------------------
if port/update-crates.sh --check; then :; else fail "Makefile.crates/distinfo are stale"; fi

# --- pkg-descr -----------------------------------------------------------
if awk 'length > 80 { print FILENAME ":" FNR ": " length " columns"; bad = 1 }
	END { exit bad }' pkg-descr; then
	ok "pkg-descr: at most 80 columns"
else
	fail "pkg-descr: lines longer than 80 columns"
fi
if grep -q '^WWW:' pkg-descr; then
	fail "pkg-descr: the WWW: line belongs in the Makefile's WWW= now"
fi

if [ "$failures" -ne 0 ]; then
	echo "port/check.sh: $failures check(s) failed" >&2
	exit 1
fi
echo "port/check.sh: all packaging checks passed"
