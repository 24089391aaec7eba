#!/usr/bin/env bash
# The web view's benchmarks (BENCHMARKS.md, "Web view"): jobq-web as a
# listener and as a CGI program, in one run, against a real gitolite's
# access check. Medians; the table goes to bench/out/web.md.
#
#   bench/web.sh           100,000 jobs of history, a 1 GiB log, 100 followers of 10 MB
#   bench/web.sh --smoke   small sizes (bench/run.sh --smoke runs this)
#
# As root on Debian 12 (scripts/setup installs gitolite3).
set -euo pipefail
cd "$(dirname "$0")/.."
smoke=0
[ "${1:-}" = "--smoke" ] && smoke=1
export PATH="$PATH:/usr/local/go/bin"
export CGO_ENABLED=0
if ((smoke)); then
    RUNS=5; HISTORY=5000; LOGBYTES=$((64 << 20)); CLIENTS=10; BYTES=$((1 << 20))
else
    RUNS=21; HISTORY=100000; LOGBYTES=$((1 << 30)); CLIENTS=100; BYTES=$((10 << 20))
fi
W=$(mktemp -d /var/tmp/jobq-webbench.XXXXXX)
[ -n "$W" ] && [ -d "$W" ] || exit 1
trap '[ -n "${BENCH_KEEP:-}" ] || rm -rf "$W"' EXIT
B=$W/bin
echo "bench/web: building" >&2
make -s build BINDIR="$B"
go build -trimpath -o "$B/seed" ./bench/seed
go build -trimpath -o "$B/webload" ./bench/webload

# A gitolite of the benchmark's own, whose rules let gitweb read the
# repositories the benchmark shows (its check is what the CGI program pays).
G=$W/gl
mkdir -p "$G"
ssh-keygen -q -t ed25519 -N '' -f "$W/admin"
HOME=$G gitolite setup -pk "$W/admin.pub" >/dev/null 2>&1
printf 'repo gitolite-admin\n    RW+ = admin\nrepo big huge live\n    R = gitweb\n' >"$G/.gitolite/conf/gitolite.conf"
HOME=$G gitolite compile >/dev/null 2>&1

echo "bench/web: seeding $HISTORY jobs" >&2
D=$W/data
"$B/seed" "$D" big "$HISTORY" "$G/repositories/big.git"
"$B/seed" "$D" huge 1 "$G/repositories/huge.git"
"$B/seed" "$D" live 1 "$G/repositories/live.git"

echo "bench/web: measuring" >&2
mkdir -p bench/out
out=bench/out/web.md
{
    echo "jobq web view, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, medians of $RUNS$( ((smoke)) && echo ' (smoke mode: small sizes)')"
    echo
    echo "| what | listener | CGI (same run) | CGI ÷ listener | target |"
    echo "| --- | --- | --- | --- | --- |"
    "$B/webload" -web "$B/jobq-web" -data "$D" -home "$G" -runs "$RUNS" -clients "$CLIENTS" -bytes "$BYTES" -logbytes "$LOGBYTES"
} >"$out"
cat "$out"
