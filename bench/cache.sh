#!/usr/bin/env bash
# What caches (JOBQ_CACHE) cost and save, each against its baseline in the
# same run; rows of bench/run.sh's table on stdout:
#   1. mounting caches: a trivial job (push to result, synchronous,
#      --network=none) with two caches against the same job without;
#   2. a real build: `go build -trimpath` of a program using much of Go's
#      standard library, in an image with Debian's golang package, with
#      its build cache (/root/.cache) a jobq cache: the first job of a
#      repository (cold) against its next (warm).
#
#   bench/cache.sh [--smoke]
#
# As root on Debian 12, after scripts/setup (bench/run.sh runs it). The Go
# image is built once, locally, from the debootstrap'd Debian the tests
# keep in /var/cache/jobq-test (made here if missing; apt from the Debian
# mirror, no registry).
set -euo pipefail
cd "$(dirname "$0")/.."
smoke=0
[ "${1:-}" = "--smoke" ] && smoke=1
RUNS=${RUNS:-$((smoke ? 3 : 15))}
BUILDS=${BUILDS:-$((smoke ? 1 : 3))}
export PATH="$PATH:/usr/local/go/bin"
export CGO_ENABLED=0

W=$(mktemp -d /var/tmp/jobq-bench-cache.XXXXXX)
[ -n "$W" ] && [ -d "$W" ] || exit 1
chmod 0755 "$W"
B=$W/bin
cleanup() {
    [ -z "${svc:-}" ] || kill "$svc" 2>/dev/null || true
    pkill -f "$B/jobq-worker" 2>/dev/null || true
    # The caches' volumes: this run's data directories' alone.
    for v in $(env -u CONTAINER_HOST podman volume ls -q --filter label=jobq.cache.repo 2>/dev/null); do
        case "$(env -u CONTAINER_HOST podman volume inspect --format '{{index .Labels "jobq.home"}}' "$v" 2>/dev/null)" in
        "$W"/*) env -u CONTAINER_HOST podman volume rm -f "$v" >/dev/null 2>&1 || true ;;
        esac
    done
    [ -n "${BENCH_KEEP:-}" ] || rm -rf "$W"
}
trap cleanup EXIT
echo "bench: caches: building" >&2
make -s build BINDIR="$B"

. bench/env.sh

median() { sort -g "$1" | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
fmt() { awk -v a="$1" 'BEGIN {printf (a < 10) ? "%.2f" : "%.0f", a}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
row() { printf '| %s | %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4" "$5"; }

# 1. Mounting caches.
echo "bench: caches: mounting" >&2
script none.sh "cd $W/repo.git && JOBQ_HOME=$W/home GL_REPO=nocache JOBQ_NETWORK=none JOBQ_COMMAND='$IMG true' exec $B/jobq hook < $W/line > /dev/null 2>&1"
script two.sh "cd $W/repo.git && JOBQ_HOME=$W/home GL_REPO=twocaches JOBQ_NETWORK=none JOBQ_CACHE='/root/.cache /var/cache/build' JOBQ_COMMAND='$IMG true' exec $B/jobq hook < $W/line > /dev/null 2>&1"
# The two alternate, one run each in turn, so that a change of the
# machine's load (other users of these shared machines) falls on both
# alike; medians of each. Three runs of each first, untimed: the caches'
# volumes are made, and the image is warm.
for _ in 1 2 3; do "$W/two.sh"; "$W/none.sh"; done
: >"$W/two"
: >"$W/none"
for _ in $(seq $((RUNS * 3))); do
    for k in two none; do
        s=$(date +%s%N); "$W/$k.sh"; e=$(date +%s%N)
        awk -v d=$((e - s)) 'BEGIN {print d / 1e6}' >>"$W/$k"
    done
done
grep -q "jobq: caches /root/.cache /var/cache/build: the main cache" "$W/home/repos/twocaches/0/log"
grep -q "succeeded" "$W/home/repos/twocaches/$((RUNS * 3 + 2))/log"
t=$(median "$W/two"); n=$(median "$W/none")
row "mounting two caches (a trivial job, push to result, --network=none)" "$(fmt "$t") ms ($(awk -v t="$t" -v n="$n" 'BEGIN {printf "%+.0f", t - n}') ms)" "no caches: $(fmt "$n") ms" "$(ratio "$t" "$n")" "≤ +50 ms"

# 2. A Go build, cold and warm.
GOIMG=localhost/jobq-bench-golang
if ! cli image exists "$GOIMG"; then
    echo "bench: caches: building $GOIMG" >&2
    base=/var/cache/jobq-test/rootfs-bookworm
    if [ ! -x "$base/usr/bin/apt-get" ]; then
        base=$W/debian
        debootstrap --variant=minbase bookworm "$base" http://deb.debian.org/debian >/dev/null
    fi
    tar -C "$base" -c . | cli import - localhost/jobq-bench-debian >/dev/null
    printf '%s\n' 'FROM localhost/jobq-bench-debian' \
        'RUN apt-get update && apt-get install -y --no-install-recommends golang-go && rm -rf /var/lib/apt/lists/*' >"$W/Containerfile"
    cli build -q -t "$GOIMG" -f "$W/Containerfile" "$W" >/dev/null
    cli rmi localhost/jobq-bench-debian >/dev/null
fi
mkdir -p "$W/gosrc"
printf 'module app\n\ngo 1.19\n' >"$W/gosrc/go.mod"
cat >"$W/gosrc/main.go" <<'EOF'
// A program that uses much of the standard library, as a service does.
package main

import (
	"archive/zip"
	"compress/gzip"
	"crypto/tls"
	"database/sql"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"go/parser"
	"go/token"
	"html/template"
	"image/png"
	"net/http"
	"net/smtp"
	"os"
	"regexp"
)

func main() {
	fmt.Println(zip.Store, gzip.BestSpeed, tls.VersionTLS13, sql.Drivers(), json.Valid(nil), xml.Header,
		token.NewFileSet(), parser.ParseComments, template.HTMLEscapeString("<"), png.BestSpeed,
		http.StatusOK, smtp.PlainAuth, regexp.MustCompile("a+"), len(os.Args))
}
EOF
git -C "$W/gosrc" init -q
git -C "$W/gosrc" add -A
git -C "$W/gosrc" -c user.name=b -c user.email=b@b commit -qm src
git clone -q --bare "$W/gosrc" "$W/go.git"
GOREV=$(git --git-dir "$W/go.git" rev-parse HEAD)
echo "0000000000000000000000000000000000000000 $GOREV refs/heads/main" >"$W/goline"
# -trimpath: the standard library is compiled too (its installed archives
# do not serve a trimmed build), into the build cache, as in a CI build.
: >"$W/cold"
: >"$W/warm"
for i in $(seq "$BUILDS"); do
    echo "bench: caches: go build $i of $BUILDS" >&2
    for kind in cold warm; do
        s=$(date +%s%N)
        (cd "$W/go.git" && JOBQ_HOME=$W/home GL_REPO=go$i JOBQ_TIMEOUT=30m JOBQ_CACHE=/root/.cache JOBQ_CACHE_SIZE=4g \
            JOBQ_COMMAND="$GOIMG env HOME=/root GOCACHE=/root/.cache/go-build GOFLAGS=-trimpath CGO_ENABLED=0 go build -o /tmp/app ." \
            "$B/jobq" hook <"$W/goline" >/dev/null 2>&1) || true
        e=$(date +%s%N)
        echo $(((e - s) / 1000000)) >>"$W/$kind"
    done
    grep -q "succeeded" "$W/home/repos/go$i/1/log" || { cat "$W/home/repos/go$i/"*/log >&2; exit 1; }
done
c=$(median "$W/cold"); w=$(median "$W/warm")
row "a Go build (go build -trimpath, Debian's golang, much of the standard library), push to result" "warm: $(awk -v w="$w" 'BEGIN {printf "%.1f", w / 1000}') s" "cold (empty cache): $(awk -v c="$c" 'BEGIN {printf "%.1f", c / 1000}') s" "$(ratio "$w" "$c")" "≤ 0.3×"
