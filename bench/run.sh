#!/usr/bin/env bash
# jobq's benchmarks, each next to its baseline measured in the same run,
# reported as medians and ratios in one table (bench/out/results.md).
#
#   bench/run.sh           the full runs (BENCHMARKS.md), about 20 minutes
#   bench/run.sh --smoke   small sizes, few runs: CI checks the scripts work
#
# As root on Debian 12; it installs what it needs (scripts/setup). Public
# tools only: hyperfine, /usr/bin/time, nq, go test -bench.
set -euo pipefail
cd "$(dirname "$0")/.."
smoke=0
[ "${1:-}" = "--smoke" ] && smoke=1
scripts/setup
export PATH="$PATH:/usr/local/go/bin"
export CGO_ENABLED=0

if ((smoke)); then
    RUNS=3; HISTORY=1000; LISTHISTORY=5000; LOGBYTES=$((64 << 20)); BURSTS=2; REPEAT=1
else
    RUNS=15; HISTORY=10000; LISTHISTORY=100000; LOGBYTES=$((1 << 30)); BURSTS=7; REPEAT=3
fi

W=$(mktemp -d /var/tmp/jobq-bench.XXXXXX)
[ -n "$W" ] && [ -d "$W" ] || exit 1
chmod 0755 "$W"
B=$W/bin
cleanup() {
    [ -z "${svc:-}" ] || kill "$svc" 2>/dev/null || true
    pkill -f "$B/jobq-worker" 2>/dev/null || true
    [ -n "${BENCH_KEEP:-}" ] || rm -rf "$W"
}
trap cleanup EXIT
mkdir -p bench/out
out=bench/out/results.md
TAGS=$(sed -n 's/^TAGS *:= *//p' Makefile)

echo "bench: building" >&2
make -s build BINDIR="$B"
go build -trimpath -ldflags "-s -w" -o "$B/empty" ./bench/empty
go build -trimpath -o "$B/seed" ./bench/seed
go build -tags "$TAGS" -trimpath -o "$B/checkout" ./bench/checkout
go build -tags "$TAGS" -trimpath -o "$B/floor" ./bench/floor
go build -trimpath -o "$B/notify" ./bench/notify
# A jobq with no jobq-worker beside it: where the benchmark times the
# worker itself, the hook must not start one.
install -D "$B/jobq" "$W/alone/jobq"

. bench/env.sh

# median FILE: the median of the numbers in FILE, one a line.
median() { sort -g "$1" | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
fmt() { awk -v a="$1" 'BEGIN {printf (a < 10) ? "%.2f" : "%.0f", a}'; }
# row WHAT JOBQ BASELINE RATIO TARGET: one row of the table, kept in a file
# as soon as it is measured, so that a section that fails later loses
# nothing measured before it.
export NQDIR=$W/nq # nq's queue, the baseline of sections 1 and 2
: >"$W/rows"
row() { printf '| %s | %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4" "$5" >>"$W/rows"; }
# section NAME FUNCTION: runs one section, in a process of its own that
# stops at its first failure (set -e); a failed section gets a row that
# says so, the others still run, and the run fails at the end.
failed=()
section() {
    echo "bench: $1" >&2
    "$2" &
    if ! wait $!; then
        row "$1" "FAILED (its output is above)" "" "" ""
        failed+=("$1")
    fi
}

# 1. Hook cost: one-ref async push into a repository with a long history;
# nq enqueueing one job. Both through a shell (hyperfine subtracts it).
s1() {
    "$B/seed" "$W/home" hist "$HISTORY" "$W/repo.git"
    script hook.sh "cd $W/repo.git && JOBQ_HOME=$W/home GL_REPO=hist JOBQ_ASYNC=1 JOBQ_RUNNER=exec JOBQ_COMMAND=true JOBQ_KEEP=1000000 exec $B/jobq hook < $W/line > /dev/null 2>&1"
    mkdir -p "$NQDIR"
    hyperfine -w 5 -r $((RUNS * 4)) --export-json "$W/hook.json" "$W/hook.sh" "nq true" >/dev/null 2>&1
    h=$(ms "$W/hook.json" 0); n=$(ms "$W/hook.json" 1)
    row "hook cost (async, $HISTORY jobs of history)" "$(fmt "$h") ms" "nq: $(fmt "$n") ms" "$(ratio "$h" "$n")" "≤ 10 ms and ≤ 1.5×"
}
section "hook cost" s1

# 2. Enqueue under load: 50 hooks at once into one queue, against 50 nq;
# into one repository (its enqueues take turns on its lock) and into 50
# repositories that share the queue.
s2() {
    for mode in one many; do
        : >"$W/burst-$mode"
        repo=burst
        [ "$mode" = many ] && repo='burst$1'
        script "hookb-$mode.sh" "cd $W/repo.git && JOBQ_HOME=\$BURST GL_REPO=$repo JOBQ_QUEUE=one JOBQ_ASYNC=1 JOBQ_RUNNER=exec JOBQ_COMMAND=true exec $B/jobq hook < $W/line > /dev/null 2>&1"
    done
    : >"$W/burst-nq"
    for i in $(seq "$BURSTS"); do
        for mode in one many; do
            export BURST=$W/burst-$mode-$i # a directory each: the last burst's workers may still run
            s=$(date +%s%N); seq 50 | xargs -P 50 -I{} "$W/hookb-$mode.sh" {}; e=$(date +%s%N)
            n=$(find "$BURST/repos" -mindepth 2 -maxdepth 2 -name '[0-9]*' | wc -l)
            [ "$n" = 50 ] || { echo "bench: only $n of 50 jobs present" >&2; exit 1; }
            awk -v d=$((e - s)) 'BEGIN {print 50 * 1e9 / d}' >>"$W/burst-$mode"
        done
        rm -rf "$NQDIR"; mkdir -p "$NQDIR"
        s=$(date +%s%N); seq 50 | xargs -P 50 -I{} nq true >/dev/null; e=$(date +%s%N)
        awk -v d=$((e - s)) 'BEGIN {print 50 * 1e9 / d}' >>"$W/burst-nq"
        pkill -f "$B/jobq-worker" 2>/dev/null || true
    done
    n=$(median "$W/burst-nq")
    for mode in one many; do
        j=$(median "$W/burst-$mode")
        what="one repository"
        [ "$mode" = many ] && what="50 repositories"
        row "enqueue under load (50 hooks at once, $what, one queue; all 50 present)" "$(fmt "$j") jobs/s" "nq: $(fmt "$n") jobs/s" "$(ratio "$j" "$n")" "≥ 1.0× nq"
    done
}
section "enqueue under load" s2

# 3. Job overhead: push to result of a trivial job in synchronous mode,
# against the article's pipeline (git checkout into a temporary directory,
# then podman run --rm), same image, --network=none.
s3() {
    script jobq-sync.sh "cd $W/repo.git && JOBQ_HOME=$W/home GL_REPO=trivial JOBQ_NETWORK=none JOBQ_COMMAND='$IMG true' exec $B/jobq hook < $W/line > /dev/null 2>&1"
    hyperfine -w 3 -r "$RUNS" --export-json "$W/overhead.json" "$W/jobq-sync.sh" "$W/article.sh" >/dev/null 2>&1
    grep -q "succeeded" "$W/home/repos/trivial/0/log"
    o=$(ms "$W/overhead.json" 0); a=$(ms "$W/overhead.json" 1)
    row "job overhead (push to result, \`true\`, --network=none)" "$(fmt "$o") ms" "article pipeline: $(fmt "$a") ms" "$(ratio "$o" "$a")" "≤ 0.6×"
    # Podman's own floor: the same container (jobq's Spec, the checkout, an ID
    # range) through the bindings alone, create to removal, in one process:
    # what is left of a push's time is jobq's.
    "$B/floor" "$IMG" "$W/repo.git" "$REV" "$RUNS" >"$W/floor"
    f=$(median "$W/floor")
    row "job overhead against Podman's floor (the same container through the bindings alone: checkout, create, attach, start, wait; removal untimed, as jobq's)" "$(fmt "$o") ms" "bindings alone: $(fmt "$f") ms" "$(ratio "$o" "$f")" "≤ 1.15×"
}
section "job overhead" s3

# 4. Checkout of a real repository: the podman, common, image and storage
# module sources (dependencies, so in the module cache).
s4() {
    big_repo
    hyperfine -w 2 -r "$RUNS" -p "rm -rf $W/co && mkdir $W/co" --export-json "$W/co.json" \
        "$B/checkout $W/big.git $BIGREV $W/co" "git --work-tree=$W/co --git-dir=$W/big.git checkout -q --force $BIGREV" >/dev/null 2>&1
    c=$(ms "$W/co.json" 0); g=$(ms "$W/co.json" 1)
    row "checkout ($files files, packed)" "$(fmt "$c") ms" "git checkout --force: $(fmt "$g") ms" "$(ratio "$c" "$g")" "≤ 1.0×"
    # Locally, the checkout (bind-mounted) or the tar a build host gets (into
    # a created container's volume, through the service)? The runner keeps the
    # checkout where this says it is not slower. Create and removal untimed.
    : >"$W/ship"
    for _ in $(seq "$RUNS"); do "$B/checkout" ship "$IMG" "$W/big.git" "$BIGREV" >>"$W/ship"; done
    t=$(median "$W/ship")
    row "the same tree as a tar into a created container (local service)" "$(fmt "$t") ms" "the checkout above: $(fmt "$c") ms" "$(ratio "$t" "$c")" "informs the choice: the checkout stays while this is ≥ 1.0×"
}
section "checkout" s4

# 5. Log capture: a container writing LOGBYTES to stdout, into the job's
# log (worker: /usr/bin/time) and into a file through the podman CLI.
s5() {
    : >"$W/cap-jobq"
    : >"$W/cap-cli"
    : >"$W/cap-rss"
    for _ in $(seq "$REPEAT"); do
        rm -rf "$W/caphome"
        # No worker beside this jobq: the benchmark runs the worker, timed.
        (cd "$W/repo.git" && JOBQ_HOME=$W/caphome GL_REPO=cap JOBQ_QUEUE=cap JOBQ_ASYNC=1 JOBQ_NETWORK=none PATH=/usr/bin:/bin \
            JOBQ_COMMAND="$IMG head -c $LOGBYTES /dev/zero" "$W/alone/jobq" hook <"$W/line" >/dev/null 2>&1) || true
        /usr/bin/time -f "%e %M" -o "$W/time" env JOBQ_HOME="$W/caphome" JOBQ_LOG_LIMIT=4g "$B/jobq-worker" drain --queue cap
        read -r secs rss <"$W/time"
        grep -q "succeeded" "$W/caphome/repos/cap/0/log"
        awk -v b="$LOGBYTES" -v s="$secs" 'BEGIN {print b / 1048576 / s}' >>"$W/cap-jobq"
        echo "$rss" >>"$W/cap-rss"
        # k8s-file, as jobq: both write the output twice.
        s=$(date +%s%N); cli run --rm --network=none --log-driver k8s-file "$IMG" head -c "$LOGBYTES" /dev/zero >"$W/cli.out"; e=$(date +%s%N)
        awk -v b="$LOGBYTES" -v d=$((e - s)) 'BEGIN {print b / 1048576 * 1e9 / d}' >>"$W/cap-cli"
        rm -f "$W/cli.out"
    done
    j=$(median "$W/cap-jobq"); c=$(median "$W/cap-cli")
    row "log capture ($((LOGBYTES >> 20)) MiB to stdout)" "$(fmt "$j") MiB/s, worker peak RSS $(($(median "$W/cap-rss") / 1024)) MiB" "podman run > file: $(fmt "$c") MiB/s" "$(ratio "$j" "$c")" "≥ 1.0×, RSS ≤ 40 MiB"
}
section "log capture" s5

# 6. Listing with a long history.
s6() {
    "$B/seed" "$W/home" big "$LISTHISTORY"
    hyperfine -N -w 5 -r $((RUNS * 4)) --export-json "$W/list.json" \
        "env JOBQ_HOME=$W/home $B/jobq big" "env JOBQ_HOME=$W/home $B/jobq big 7" >/dev/null 2>&1
    row "\`jobq REPO\` ($LISTHISTORY jobs of history)" "$(fmt "$(ms "$W/list.json" 0)") ms" "" "" "≤ 50 ms"
    row "\`jobq REPO ID\` (a finished job)" "$(fmt "$(ms "$W/list.json" 1)") ms" "" "" "≤ 20 ms"
}
section "listing" s6

# 7. Footprint: the worker while a job runs; start-up of the program every
# push and every ssh call runs, against an empty Go program.
s7() {
    : >"$W/rss"
    for _ in $(seq "$REPEAT"); do
        rm -rf "$W/fp"
        (cd "$W/repo.git" && JOBQ_HOME=$W/fp GL_REPO=fp JOBQ_QUEUE=fp JOBQ_ASYNC=1 JOBQ_COMMAND="$IMG sleep 2" PATH=/usr/bin:/bin \
            "$W/alone/jobq" hook <"$W/line" >/dev/null 2>&1) || true
        /usr/bin/time -f "%M" -o "$W/time" env JOBQ_HOME="$W/fp" "$B/jobq-worker" drain --queue fp
        grep -q "succeeded" "$W/fp/repos/fp/0/log" # the worker measured ran the job
        cat "$W/time" >>"$W/rss"
    done
    row "worker peak RSS while a job runs" "$(($(median "$W/rss") / 1024)) MiB" "" "" "≤ 30 MiB"
    ln -sf "$B/jobq" "$W/post-receive.h00-jobq"
    # All three through env, as jobq needs its environment set.
    hyperfine -N -i -w 20 -r $((RUNS * 20)) --export-json "$W/start.json" "env JOBQ_HOME=$W/home $B/empty" \
        "env JOBQ_HOME=$W/home $B/jobq nosuch" "env JOBQ_HOME=$W/home $W/post-receive.h00-jobq" >/dev/null 2>&1
    e=$(ms "$W/start.json" 0); s=$(ms "$W/start.json" 1); h=$(ms "$W/start.json" 2)
    row "start-up: an ssh command (\`jobq REPO\`, unknown repository)" "$(fmt "$s") ms" "empty Go program: $(fmt "$e") ms" "$(ratio "$s" "$e")" "≤ 1.5×"
    row "start-up: the hook (no JOBQ_COMMAND set)" "$(fmt "$h") ms" "empty Go program: $(fmt "$e") ms" "$(ratio "$h" "$e")" "≤ 1.5×"
}
section "footprint" s7

# 8. Build hosts: two build hosts (containers of this machine,
# each with sshd and a rootless Podman of its own, internal/testenv), from
# e2e/remote's benchmarks: shipping the checkout repository's tree, a
# trivial remote job against the article's pipeline by hand, and 8 jobs on
# a pool of 2 hosts against 1. They append their rows to $W/remote-rows.
s8() {
    : >"$W/remote-rows"
    CI=true JOBQ_TEST_ACCOUNT=jobq-bench JOBQ_BENCH_RUNS=$((smoke ? 2 : 7)) JOBQ_BENCH_TREE="$W/big.git" JOBQ_BENCH_ROWS="$W/remote-rows" \
        go test -tags "$TAGS" -count=1 -timeout 30m -run XXX -bench Remote -benchtime 1x ./e2e/remote/ >"$W/remote.out" 2>&1 ||
        { cat "$W/remote.out" >&2; exit 1; }
    cat "$W/remote-rows" >>"$W/rows"
}
section "build hosts" s8

# 9. Artifacts: a stopped container whose /source (bind-mounted, as a
# local job's checkout) holds 100 MiB in 1,000 files, collected by jobq
# (bench/collect: the archive endpoint through the service, written by
# internal/safetar) and copied by podman cp; the ratio is podman cp's
# time over jobq's (jobq's speed relative to it).
s9() {
    go build -tags "$TAGS" -trimpath -o "$B/collect" ./bench/collect
    local n=$((smoke ? 100 : 1000)) size=104857
    mkdir -p "$W/artsrc"
    cli rm -f jobq-bench-art >/dev/null 2>&1 || true
    cli run --name jobq-bench-art --network none -v "$W/artsrc:/source" "$IMG" sh -c \
        "mkdir -p /source/out && cd /source/out && i=0 && while [ \$i -lt $n ]; do head -c $size /dev/urandom >f\$i.bin; i=\$((i + 1)); done"
    hyperfine -w 2 -r "$RUNS" -p "rm -rf $W/art && mkdir $W/art" --export-json "$W/art.json" \
        "$B/collect jobq-bench-art $W/art '100m $n' 'out/**'" \
        "env -u CONTAINER_HOST podman cp jobq-bench-art:/source/out $W/art/out" >/dev/null 2>&1
    j=$(ms "$W/art.json" 0); p=$(ms "$W/art.json" 1)
    row "artifacts: $n files, $((n * size >> 20)) MiB, from a stopped container" "$(fmt "$j") ms" "podman cp: $(fmt "$p") ms" "$(ratio "$p" "$j")" "≥ 0.9× (podman cp's time over jobq's)"
    cli rm -f jobq-bench-art >/dev/null
}
section "artifacts" s9

# 10. Metrics: a scrape of jobq-web's metrics listener with a long history
# in 100 repositories (and one job queued), once the first scrape, which
# reads every record, is done; against reading every record as a scrape
# that kept nothing would (the summary, jobq, does that).
s10() {
    for r in $(seq -w 0 99); do "$B/seed" "$W/mhome" "m$r" $((LISTHISTORY / 100)) "$W/mgit/m$r.git"; done
    (cd "$W/mgit/m00.git" && JOBQ_HOME=$W/mhome GL_REPO=m00 JOBQ_ASYNC=1 JOBQ_COMMAND=true JOBQ_KEEP=1000000 PATH=/usr/bin:/bin \
        "$W/alone/jobq" hook <"$W/line" >/dev/null 2>&1)
    JOBQ_HOME=$W/mhome "$B/jobq-web" --metrics-listen 0 2>"$W/metrics.log" &
    web=$!
    trap 'kill $web' EXIT
    url=
    for _ in $(seq 100); do
        url=$(sed -n 's|^jobq-web: metrics on \(http://.*\)$|\1|p' "$W/metrics.log")
        [ -n "$url" ] && break
        sleep 0.1
    done
    first=$(curl -sf -o /dev/null -w '%{time_total}' "$url")
    curl -sf "$url" | grep -qx 'jobq_jobs{state="queued"} 1' # the scrape counts what the store holds
    # curl's own time for the request (its start-up, which is most of a
    # run of curl, is not the scrape's).
    : >"$W/scrapes"
    for _ in $(seq $((RUNS * 4))); do curl -sf -o /dev/null -w '%{time_total}\n' "$url" | awk '{print $1 * 1000}' >>"$W/scrapes"; done
    hyperfine -N -w 3 -r $((RUNS * 2)) --export-json "$W/metrics.json" "env JOBQ_HOME=$W/mhome $B/jobq --json" >/dev/null 2>&1
    m=$(median "$W/scrapes"); s=$(ms "$W/metrics.json" 0)
    row "\`/metrics\` scrape ($LISTHISTORY jobs of history, 100 repositories)" "$(fmt "$m") ms" "every record read (\`jobq\` summary): $(fmt "$s") ms" "$(ratio "$m" "$s")" "≤ 50 ms"
    row "\`/metrics\`: the first scrape after jobq-web starts" "$(fmt "$(awk -v t="$first" 'BEGIN {print t * 1000}')") ms" "" "" ""
}
section "metrics" s10

# 11. Secret masking: a log capture model (a job's output read from a
# pipe, appended to a log file) of LOGBYTES, with 20 secrets given and
# masked against none, alternating (go test -count), from
# internal/secret's BenchmarkCapture; and the masker alone.
s11() {
    JOBQ_BENCH_CAPTURE=$LOGBYTES go test -count "$REPEAT" -run XXX -bench 'Capture|Mask$' -benchtime 1x ./internal/secret/ >"$W/mask.out" 2>&1 ||
        { cat "$W/mask.out" >&2; exit 1; }
    mbs() { awk -v w="$1" '$1 ~ "^Benchmark" w "(-[0-9]+)?$" {print $(NF)=="MB/s" ? $(NF-1) : ""}' "$W/mask.out" | grep . >"$W/mask.$2"; median "$W/mask.$2"; }
    none=$(mbs 'Capture/none' none); with=$(mbs 'Capture/20secrets' with); alone=$(mbs 'Mask' alone)
    row "log capture model ($((LOGBYTES >> 20)) MiB through a pipe) with 20 secrets masked" "$(fmt "$with") MB/s (masker alone: $(fmt "$alone") MB/s)" "no secrets: $(fmt "$none") MB/s" "$(ratio "$with" "$none")" "≥ 0.9×"
}
section "secret masking" s11

# 12. A trivial exec job with 3 secrets against none: push to result in
# synchronous mode (grants from the environment: no gitolite here; with
# one, a job of a repository with grants also waits for
# "gitolite git-config" as it starts).
s12() {
    for n in a b c; do
        printf 'bench-secret-value-%s\n' "$n" | JOBQ_HOME=$W/sechome "$B/jobq" secret set "bench_$n" >/dev/null
    done
    script exec-plain.sh "cd $W/repo.git && JOBQ_HOME=$W/sechome GL_REPO=plain JOBQ_RUNNER=exec JOBQ_COMMAND=true exec $B/jobq hook < $W/line > /dev/null 2>&1"
    script exec-secrets.sh "cd $W/repo.git && JOBQ_HOME=$W/sechome GL_REPO=withsec JOBQ_RUNNER=exec JOBQ_COMMAND=true JOBQ_SECRETS='bench_a:A bench_b bench_c:C' exec $B/jobq hook < $W/line > /dev/null 2>&1"
    hyperfine -w 3 -r "$RUNS" --export-json "$W/secjob.json" "$W/exec-plain.sh" "$W/exec-secrets.sh" >/dev/null 2>&1
    grep -q "secrets given: bench_a" "$W/sechome/repos/withsec/0/log"
    p=$(ms "$W/secjob.json" 0); s=$(ms "$W/secjob.json" 1)
    row "trivial exec job with 3 secrets (push to result, synchronous)" "$(fmt "$s") ms" "no secrets: $(fmt "$p") ms" "$(ratio "$s" "$p")" "≤ 1.05×"
}
section "secrets, job overhead" s12

# 13. Notifications (bench/notify): failing exec jobs in one queue, each
# with a webhook; the time from a job's result (its record) to the arrival
# at a live receiver on loopback; and the time from a job's result to the
# next job's start with no notifications, with the live receiver, and with
# a receiver that accepts and never answers. NJOBS jobs per mode, the
# modes taking turns over rounds.
s13() {
    njobs=$((smoke ? 30 : 300))
    "$B/notify" -jobq "$W/alone/jobq" -worker "$B/jobq-worker" -dir "$W/notify" -n "$njobs" -rounds $((smoke ? 3 : 10)) >"$W/notify.out"
    read -r _ d50 d99 dmax < <(grep '^delivery ' "$W/notify.out")
    read -r _ n50 n99 < <(grep '^gap-none ' "$W/notify.out")
    read -r _ l50 l99 < <(grep '^gap-live ' "$W/notify.out")
    read -r _ x50 x99 < <(grep '^gap-dead ' "$W/notify.out")
    row "notification: result to a live webhook receiver ($njobs jobs)" "p50 $(fmt "$d50") ms, p99 $(fmt "$d99") ms (max $(fmt "$dmax"))" "" "" "p99 ≤ 1 s"
    row "next job's start after a result, a dead receiver (median, p99)" "$(fmt "$x50") ms, $(fmt "$x99") ms" "no notifications: $(fmt "$n50") ms, $(fmt "$n99") ms; live receiver: $(fmt "$l50") ms, $(fmt "$l99") ms" "+$(awk -v a="$x50" -v b="$n50" 'BEGIN {printf "%.2f", a - b}') ms" "≤ +5 ms"
}
section "notifications" s13

# 14. Caches (JOBQ_CACHE): mounting two caches on a trivial job, and a Go
# build with its build cache cold and warm (bench/cache.sh).
s14() {
    bench/cache.sh $( ((smoke)) && echo --smoke) >"$W/cache-rows"
    cat "$W/cache-rows" >>"$W/rows"
}
section "caches" s14

# 15. Secrets in a container job: push to result of section 3's trivial job
# (synchronous, --network=none) given 3 secrets, as files in /run/secrets
# and as variables too (jobq-env), against the same job given none. Each
# in a data directory of its own, its store holding the 3 values;
# JOBQ_SECRETS is the worker's own (no gitolite here). RUNS rounds, medians.
s15() {
    for k in none files vars; do
        for n in 1 2 3; do
            printf 'bench-secret-%d-%s' "$n" "$RANDOM$RANDOM$RANDOM" | JOBQ_HOME=$W/home-sec-$k "$B/jobq" secret set "bench_s$n" >/dev/null
        done
    done
    hook() { script "sec-$1.sh" "cd $W/repo.git && JOBQ_HOME=$W/home-sec-$1 GL_REPO=trivial JOBQ_NETWORK=none JOBQ_COMMAND='$IMG true' JOBQ_SECRETS='$2' exec $B/jobq hook < $W/line > /dev/null 2>&1"; }
    hook none ""
    hook files "bench_s1 bench_s2 bench_s3"
    hook vars "bench_s1:BENCH_S1 bench_s2:BENCH_S2 bench_s3:BENCH_S3"
    # Alternating, each round in another order, not hyperfine's one command
    # after the other: on a loaded machine, a drift of load between the
    # commands would be larger than the difference measured.
    : >"$W/sec-none.ms"; : >"$W/sec-files.ms"; : >"$W/sec-vars.ms"
    for i in $(seq 0 "$((RUNS + 2))"); do
        for k in $(printf '%s\n' none files vars none files | tail -n +"$((i % 3 + 1))" | head -3); do
            t0=$(date +%s%N)
            "$W/sec-$k.sh"
            t1=$(date +%s%N)
            if ((i >= 3)); then echo "$(((t1 - t0) / 1000))" >>"$W/sec-$k.ms"; fi # the first rounds warm up
        done
    done
    for k in none files vars; do grep -q "succeeded" "$W/home-sec-$k/repos/trivial/0/log"; done
    grep -q "bench_s3" "$W/home-sec-vars/repos/trivial/0/log"
    # The last jobs' clean-up (their secrets on /dev/shm) is done before
    # the run's end stops the workers.
    for _ in $(seq 300); do
        [ -z "$(find "$W"/home-sec-*/repos/trivial/*/run -mindepth 1 -print -quit 2>/dev/null)" ] && break
        sleep 0.1
    done
    n=$(median "$W/sec-none.ms" | awk '{print $1 / 1000}'); f=$(median "$W/sec-files.ms" | awk '{print $1 / 1000}'); v=$(median "$W/sec-vars.ms" | awk '{print $1 / 1000}')
    row "trivial job given 3 secrets (push to result, \`true\`, --network=none; files in /run/secrets)" "$(fmt "$f") ms" "no secrets: $(fmt "$n") ms" "$(ratio "$f" "$n")" "≤ 1.05×"
    row "the same, the 3 also variables (jobq-env, an image inspect)" "$(fmt "$v") ms" "no secrets: $(fmt "$n") ms" "$(ratio "$v" "$n")" "reported"
}
section "secrets in a container job" s15

{
    echo "jobq benchmarks, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, medians$( ((smoke)) && echo ' (smoke mode: small sizes, few runs)')"
    echo
    echo "| what | jobq | baseline (same run) | ratio | target |"
    echo "| --- | --- | --- | --- | --- |"
    cat "$W/rows"
} >"$out"

# The web view's own table (bench/out/web.md); its smoke mode takes seconds.
if ((smoke)); then bench/web.sh --smoke; fi

echo "bench: go test -bench" >&2
go test -tags "$TAGS" -run XXX -bench . -benchmem -count "$((smoke ? 1 : 5))" ./queue ./internal/gittree ./notify >bench/out/go-bench.txt 2>&1
cat "$out"
if ((${#failed[@]})); then
    echo "bench: failed: ${failed[*]}" >&2
    exit 1
fi
