#!/bin/sh
# Writes the port's Makefile.crates and distinfo from Cargo.lock, as
# "make cargo-crates" and "make makesum" would on FreeBSD:
#   - CARGO_CRATES lists every crates.io package of Cargo.lock, in Cargo.lock
#     order, as name-version (Mk/Scripts/cargo-crates.awk);
#   - distinfo gives each rust/crates/name-version.crate its SHA256, which is
#     Cargo.lock's checksum (verified against the file), and its SIZE, from the
#     .crate file in cargo's cache (fetched with "cargo fetch" when missing).
# Lines of distinfo for other files (the source tarball, once "make makesum"
# has added it) are kept. TIMESTAMP changes only when the content does.
# Needs only POSIX sh, awk, cmp and sha256sum (or sha256 on FreeBSD).
#
# Usage: port/update-crates.sh [--check]
#   --check  change nothing; exit 1 (with a diff) if the files are stale.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
portdir="$root/port/mail/cyrsync"
cache="${CARGO_HOME:-$HOME/.cargo}/registry/cache"
mode="write"
case "${1:-}" in
--check) mode="check" ;;
"") ;;
*)
	echo "usage: $0 [--check]" >&2
	exit 64
	;;
esac

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# "name-version checksum" for each crates.io package, in Cargo.lock order.
awk '
function flush() {
	if (source == "registry+https://github.com/rust-lang/crates.io-index")
		print name "-" version, checksum
	name = version = source = checksum = ""
}
/^\[\[package\]\]$/ { flush() }
/^(name|version|source|checksum) = "/ {
	value = $0
	sub(/^[a-z]+ = "/, "", value)
	sub(/"$/, "", value)
	if ($1 == "name") name = value
	else if ($1 == "version") version = value
	else if ($1 == "source") source = value
	else checksum = value
}
END { flush() }
' "$root/Cargo.lock" >"$tmp/crates"

awk '{ printf "%s%s%s", (NR == 1 ? "CARGO_CRATES=\t" : " \\\n\t\t"), $1, "" }
	END { if (NR) print "" }' "$tmp/crates" >"$tmp/Makefile.crates"

sha256_of() {
	if command -v sha256sum >/dev/null 2>&1; then
		sha256sum "$1" | cut -d ' ' -f 1
	else
		sha256 -q "$1"
	fi
}

find_crate() {
	for f in "$cache"/*/"$1.crate"; do
		if [ -f "$f" ]; then
			echo "$f"
			return 0
		fi
	done
	return 1
}

fetched=no
: >"$tmp/body"
while read -r crate checksum; do
	if ! file=$(find_crate "$crate"); then
		if [ "$fetched" = no ]; then
			echo "fetching crates missing from $cache" >&2
			(cd "$root" && cargo fetch --locked --quiet)
			fetched=yes
		fi
		file=$(find_crate "$crate") || {
			echo "$crate.crate is not in $cache even after cargo fetch" >&2
			exit 1
		}
	fi
	sha=$(sha256_of "$file")
	if [ "$sha" != "$checksum" ]; then
		echo "$file: sha256 $sha differs from Cargo.lock's $checksum" >&2
		exit 1
	fi
	size=$(wc -c <"$file" | tr -d ' ')
	printf 'SHA256 (rust/crates/%s.crate) = %s\nSIZE (rust/crates/%s.crate) = %s\n' \
		"$crate" "$sha" "$crate" "$size" >>"$tmp/body"
done <"$tmp/crates"

old="$portdir/distinfo"
if [ -f "$old" ]; then
	# The source tarball's lines (anything not a crate) stay, after the crates.
	grep -v -e '^TIMESTAMP = ' -e '(rust/crates/' "$old" | grep -v '^$' >>"$tmp/body" || true
	grep -v '^TIMESTAMP = ' "$old" >"$tmp/old-body" || true
fi
if [ -f "$old" ] && cmp -s "$tmp/body" "$tmp/old-body"; then
	grep '^TIMESTAMP = ' "$old" >"$tmp/distinfo"
else
	echo "TIMESTAMP = $(date +%s)" >"$tmp/distinfo"
fi
cat "$tmp/body" >>"$tmp/distinfo"

if [ "$mode" = check ]; then
	stale=0
	for f in Makefile.crates distinfo; do
		if ! diff -u "$portdir/$f" "$tmp/$f"; then
			stale=1
		fi
	done
	if [ "$stale" -ne 0 ]; then
		echo "port/mail/cyrsync: Makefile.crates or distinfo does not match" \
			"Cargo.lock; run port/update-crates.sh" >&2
		exit 1
	fi
	echo "port/mail/cyrsync: Makefile.crates and distinfo match Cargo.lock" \
		"($(wc -l <"$tmp/crates" | tr -d ' ') crates)"
else
	cp "$tmp/Makefile.crates" "$tmp/distinfo" "$portdir/"
	echo "wrote $portdir/Makefile.crates and $portdir/distinfo"
fi
