#!/usr/bin/env bash
# What adoption costs and gives, before and after in one run:
#   1. log capture: a container writing LOGBYTES (1 GiB) to stdout into the
#      job's log, jobq at BEFORE, at the work tree, and at the work tree
#      with the container's log driver none instead of k8s-file ("single":
#      what conmon's second write costs), worker peak RSS, against
#      `podman run > file` (the default driver here, k8s-file, writes
#      twice as well) and `podman run --log-driver none > file`; in
#      ROUNDS rounds, alternating, medians;
#   2. adoption: a job prints a line every 10 ms; its worker is SIGKILLed;
#      the time from the next worker's start to the first byte of the job's
#      output it appends after its notice (work tree only), ROUNDS rounds.
#
#   bench/adopt.sh BEFORE     BEFORE: the commit to compare with
#
# As root on Debian 12, after bench/run.sh has installed what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
BEFORE=${1:?usage: bench/adopt.sh COMMIT-BEFORE}
ROUNDS=${ROUNDS:-5}
LOGBYTES=${LOGBYTES:-$((1 << 30))}
export PATH="$PATH:/usr/local/go/bin"
export CGO_ENABLED=0

W=$(mktemp -d /var/tmp/jobq-bench-adopt.XXXXXX)
[ -n "$W" ] && [ -d "$W" ] || exit 1
chmod 0755 "$W"
cleanup() {
    [ -z "${svc:-}" ] || kill "$svc" 2>/dev/null || true
    for b in before after single; do pkill -f "$W/$b/jobq-worker" 2>/dev/null || true; done
    rm -rf "$W"
}
trap cleanup EXIT

echo "bench: building $BEFORE and the work tree" >&2
mkdir -p "$W/src-before" "$W/src-single"
git archive "$BEFORE" | tar -x -C "$W/src-before"
make -s -C "$W/src-before" build BINDIR="$W/before"
make -s build BINDIR="$W/after"
# The work tree, with the container's output written once: no k8s-file.
tar -c --exclude=./.git . | tar -x -C "$W/src-single"
sed -i 's/Driver: "k8s-file"}/Driver: "none"}/' "$W/src-single/runner/podman/spec.go"
grep -q 'Driver: "none"}' "$W/src-single/runner/podman/spec.go"
make -s -C "$W/src-single" build BINDIR="$W/single"
# jobq without a worker beside it: the benchmark starts the workers.
for b in before after single; do install -D "$W/$b/jobq" "$W/$b-alone/jobq"; done

. bench/env.sh

median() { sort -g "$1" | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
hook() { # hook BUILD HOME REPO COMMAND [VAR=VALUE...]
    local b=$1 home=$2 repo=$3 command=$4
    shift 4
    (cd "$W/repo.git" && env JOBQ_HOME="$home" GL_REPO="$repo" JOBQ_QUEUE="$repo" JOBQ_ASYNC=1 JOBQ_NETWORK=none PATH=/usr/bin:/bin \
        JOBQ_COMMAND="$command" "$@" "$W/$b-alone/jobq" hook <"$W/line" >/dev/null 2>&1) || true
}

echo "bench: log capture" >&2
for f in cap-before cap-after cap-single rss-before rss-after rss-single cap-cli cap-cli-none; do : >"$W/$f"; done
for _ in $(seq "$ROUNDS"); do
    for b in before after single; do
        rm -rf "$W/caphome"
        hook "$b" "$W/caphome" cap "$IMG head -c $LOGBYTES /dev/zero"
        /usr/bin/time -f "%e %M" -o "$W/time" env JOBQ_HOME="$W/caphome" JOBQ_LOG_LIMIT=4g "$W/$b/jobq-worker" drain --queue cap
        read -r secs rss <"$W/time"
        grep -q "succeeded" "$W/caphome/repos/cap/0/log"
        awk -v b="$LOGBYTES" -v s="$secs" 'BEGIN {print b / 1048576 / s}' >>"$W/cap-$b"
        echo "$rss" >>"$W/rss-$b"
    done
    for d in cli:k8s-file cli-none:none; do
        s=$(date +%s%N); cli run --rm --network=none --log-driver "${d#*:}" "$IMG" head -c "$LOGBYTES" /dev/zero >"$W/cli.out"; e=$(date +%s%N)
        awk -v b="$LOGBYTES" -v d=$((e - s)) 'BEGIN {print b / 1048576 * 1e9 / d}' >>"$W/cap-${d%:*}"
        rm -f "$W/cli.out"
    done
done
c=$(median "$W/cap-cli")
for b in before after single; do
    j=$(median "$W/cap-$b")
    printf 'log capture (%d MiB), %s: %.0f MiB/s (%s), %.2fx podman run > file (%.0f MiB/s), worker peak RSS %d MiB\n' \
        $((LOGBYTES >> 20)) "$b" "$j" "$(sort -g "$W/cap-$b" | tr '\n' ' ')" "$(echo "$j / $c" | bc -l)" "$c" $(($(median "$W/rss-$b") / 1024))
done
n=$(median "$W/cap-cli-none")
printf 'the second write (k8s-file) costs: jobq %.1f %% (%.0f against %.0f MiB/s), podman run > file %.1f %% (%.0f against %.0f MiB/s)\n' \
    "$(echo "100 - 100 * $(median "$W/cap-after") / $(median "$W/cap-single")" | bc -l)" "$(median "$W/cap-after")" "$(median "$W/cap-single")" \
    "$(echo "100 - 100 * $c / $n" | bc -l)" "$c" "$n"

echo "bench: adoption" >&2
: >"$W/adopt"
notice="jobq: worker restarted; output continues"
for round in $(seq "$ROUNDS"); do
    home=$W/adopthome-$round
    hook after "$home" adopt "$IMG sh -c 'i=0; while [ \$i -lt 400 ]; do echo line-\$i; i=\$((i+1)); sleep 0.01; done'"
    log=$home/repos/adopt/0/log
    env JOBQ_HOME="$home" "$W/after/jobq-worker" drain --queue adopt &
    pid=$!
    for _ in $(seq 1000); do grep -q '^line-20$' "$log" 2>/dev/null && break; sleep 0.01; done
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null || true
    s=$(date +%s%N)
    env JOBQ_HOME="$home" "$W/after/jobq-worker" drain --queue adopt &
    pid=$!
    # The first byte after the notice: the job's output, appended by the
    # new worker.
    while :; do
        n=$(grep -a -A1 -F "$notice" "$log" 2>/dev/null | wc -c) || n=0
        [ "$n" -gt $((${#notice} + 1)) ] && break
    done
    e=$(date +%s%N)
    echo $(((e - s) / 1000000)) >>"$W/adopt"
    wait "$pid"
    grep -q "jobq: succeeded" "$log"
done
printf 'adoption, worker start to the first new byte of output: median %d ms (%s ms)\n' \
    "$(median "$W/adopt")" "$(sort -n "$W/adopt" | tr '\n' ' ')"
