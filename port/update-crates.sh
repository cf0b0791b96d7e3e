#!/bin/sh
# Writes the port's Makefile.crates and distinfo from Cargo.lock, as
# "make cargo-crates" and "make makesum" would on FreeBSD:
#   - CARGO_CRATES lists every crates.io package of Cargo.lock, in Cargo.lock
#     order, as name-version (Mk/Scripts/cargo-crates.awk);
#   - distinfo gives each rust/crates/name-version.crate its SHA256, which is
#     Cargo.lock's checksum, and its SIZE, from the .crate file in cargo's
#     cache (fetched with "cargo fetch" when missing).
# Lines of distinfo for other files (the source tarball, once "make makesum"
# has added it) are kept. TIMESTAMP changes only when the content does.
#
# Usage: port/update-crates.sh [--check]
#   --check  change nothing; exit 1 (with a diff) if the files are stale.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
portdir="$root/port/mail/cyrsync"
mode="write"
case "${1:-}" in
--check) mode=check ;;
"") ;;
*)
	echo "usage: $0 [--check]" >&2
	exit 64
	;;
esac

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

generate() {
	python3 - "$root/Cargo.lock" "$portdir/distinfo" "$tmp" "${CARGO_HOME:-$HOME/.cargo}" "$1" <<'PY'
import glob, hashlib, os, sys, time, tomllib

lock_path, distinfo_path, out_dir, cargo_home, allow_missing = sys.argv[1:]
CRATES_IO = "registry+https://github.com/rust-lang/crates.io-index"

with open(lock_path, "rb") as f:
    lock = tomllib.load(f)
crates = [p for p in lock.get("package", []) if p.get("source") == CRATES_IO]

names = [f"{p['name']}-{p['version']}" for p in crates]
with open(os.path.join(out_dir, "Makefile.crates"), "w") as f:
    for i, n in enumerate(names):
        lead = "CARGO_CRATES=\t" if i == 0 else "\t\t"
        tail = " \\\n" if i < len(names) - 1 else "\n"
        f.write(lead + n + tail)

caches = glob.glob(os.path.join(cargo_home, "registry", "cache", "*"))
missing, lines = [], []
for p, n in zip(crates, names):
    path = f"rust/crates/{n}.crate"
    found = [c for c in (os.path.join(d, n + ".crate") for d in caches) if os.path.isfile(c)]
    if not found:
        missing.append(n)
        continue
    with open(found[0], "rb") as f:
        data = f.read()
    sha = hashlib.sha256(data).hexdigest()
    if sha != p["checksum"]:
        sys.exit(f"{found[0]}: sha256 {sha} differs from Cargo.lock's {p['checksum']}")
    lines.append(f"SHA256 ({path}) = {sha}\n")
    lines.append(f"SIZE ({path}) = {len(data)}\n")
if missing:
    if allow_missing == "yes":
        open(os.path.join(out_dir, "missing"), "w").write("\n".join(missing))
        sys.exit(0)
    sys.exit("not in cargo's cache even after cargo fetch: " + " ".join(missing))

# Keep what is not a crate (the source tarball's lines) after the crates.
old_timestamp, kept = None, []
if os.path.exists(distinfo_path):
    for line in open(distinfo_path):
        if line.startswith("TIMESTAMP = "):
            old_timestamp = line
        elif "(rust/crates/" not in line and line.strip():
            kept.append(line)
body = "".join(lines + kept)
old_body = None
if os.path.exists(distinfo_path):
    old_body = "".join(l for l in open(distinfo_path) if not l.startswith("TIMESTAMP = "))
stamp = old_timestamp if (old_timestamp and old_body == body) else f"TIMESTAMP = {int(time.time())}\n"
with open(os.path.join(out_dir, "distinfo"), "w") as f:
    f.write(stamp + body)
PY
}

generate yes
if [ -s "$tmp/missing" ]; then
	echo "fetching crates not in cargo's cache: $(tr '\n' ' ' <"$tmp/missing")" >&2
	(cd "$root" && cargo fetch --locked --quiet)
	rm -f "$tmp/missing"
	generate no
fi

if [ "$mode" = check ]; then
	stale=0
	for f in Makefile.crates distinfo; do
		if ! diff -u "$portdir/$f" "$tmp/$f"; then
			stale=1
		fi
	done
	if [ "$stale" -ne 0 ]; then
		echo "port/mail/cyrsync: Makefile.crates or distinfo does not match Cargo.lock;" \
			"run port/update-crates.sh" >&2
		exit 1
	fi
	echo "port/mail/cyrsync: Makefile.crates and distinfo match Cargo.lock"
else
	cp "$tmp/Makefile.crates" "$tmp/distinfo" "$portdir/"
	echo "wrote $portdir/Makefile.crates and $portdir/distinfo"
fi
