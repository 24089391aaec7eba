#!/usr/bin/env bash
# Waiting queues: N queues (1,000 by default), each with a job waiting for
# the only slot (JOBQ_SLOTS=1, held by a long job), as N pushes to N new
# repositories leave them; then the memory (RSS, summed) and the number of
# the jobq processes that hold them, and the hook's cost while they wait.
#
#   bench/waiting.sh [N]          this tree's build
#   JOBQ_BIN=DIR bench/waiting.sh  another build's jobq and jobq-worker
#
# Results: bench/out/waiting.md. Targets: RSS <= 64 MiB and <= 10
# processes with 1,000 queues waiting; the hook <= 10 ms (median).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
export PATH="$PATH:/usr/local/go/bin"
export CGO_ENABLED=0

W=$(mktemp -d /var/tmp/jobq-waiting.XXXXXX)
[ -n "$W" ] && [ -d "$W" ] || exit 1
B=${JOBQ_BIN:-$W/bin}
cleanup() {
    # The processes this run started: the workers of its own binaries.
    pkill -KILL -f "^$B/jobq-worker" 2>/dev/null || true
    [ -n "${BENCH_KEEP:-}" ] || rm -rf "$W"
}
trap cleanup EXIT
[ -n "${JOBQ_BIN:-}" ] || make -s build BINDIR="$B"
mkdir -p bench/out

git init -q --bare "$W/repo.git"
git init -q "$W/wk"
echo x >"$W/wk/f"
git -C "$W/wk" add f
git -C "$W/wk" -c user.name=b -c user.email=b@b commit -qm c
git -C "$W/wk" push -q "$W/repo.git" HEAD:refs/heads/main
REV=$(git --git-dir "$W/repo.git" rev-parse refs/heads/main)
echo "0000000000000000000000000000000000000000 $REV refs/heads/main" >"$W/line"

export JOBQ_HOME=$W/home JOBQ_SLOTS=1 JOBQ_ASYNC=1 JOBQ_RUNNER=exec GL_USER=bench
# As gitolite runs it: named post-receive (with GL_USER set, "jobq hook"
# is refused).
mkdir -p "$W/hooks"
ln -s "$B/jobq" "$W/hooks/post-receive"
hook() { (cd "$W/repo.git" && GL_REPO=$1 JOBQ_COMMAND=$2 "$W/hooks/post-receive" <"$W/line" >/dev/null 2>&1); }

# The slot: a job that runs until the end of the benchmark.
hook blocker "sleep 3600"
for _ in $(seq 600); do
    grep -q '"state": *"running"' "$JOBQ_HOME/repos/blocker/0/job.json" 2>/dev/null && break
    sleep 0.1
done

echo "waiting.sh: $N pushes to $N new repositories" >&2
s=$(date +%s%N)
for i in $(seq "$N"); do hook "w$i" true; done
e=$(date +%s%N)
# Until every job waits (its worker says why), and no hook's worker is
# still on its way out.
for _ in $(seq 1200); do
    n=$(find "$JOBQ_HOME/repos" -path '*/0/waiting' -size +0 | wc -l)
    [ "$n" -ge "$N" ] && break
    sleep 0.1
done
sleep 2
[ "$n" -ge "$N" ] || { echo "waiting.sh: only $n of $N jobs wait" >&2; exit 1; }

# Every process of this build's jobq-worker (job supervisors aside).
procs=0 rss=0 threads=0 fds=0 each=""
for p in $(pgrep -f "^$B/jobq-worker drain"); do
    r=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null) || continue
    t=$(awk '/^Threads:/ {print $2}' "/proc/$p/status")
    procs=$((procs + 1)) rss=$((rss + r)) threads=$((threads + t)) each="$each $((r / 1024))"
    fds=$((fds + $(ls "/proc/$p/fd" | wc -l)))
done
# Their CPU while the jobs wait: 10 s of it.
cpu() {
    local t=0
    for p in $(pgrep -f "^$B/jobq-worker drain"); do
        t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo "$t"
}
c0=$(cpu); sleep 10; c1=$(cpu)
cpupct=$(awk -v d=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.1f", d / hz / 10 * 100}')
# The hook's cost now, into a queue of its own, as bench/run.sh's first row.
printf '#!/bin/sh\ncd %s && GL_REPO=hookcost JOBQ_COMMAND=true exec %s < %s > /dev/null 2>&1\n' "$W/repo.git" "$W/hooks/post-receive" "$W/line" >"$W/hook.sh"
chmod +x "$W/hook.sh"
hyperfine -N -w 5 -r 40 --export-json "$W/hook.json" "$W/hook.sh" >/dev/null 2>&1
hookms=$(jq -r '.results[0].median * 1000' "$W/hook.json")

{
    echo "jobq waiting queues, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores"
    echo
    echo "| what | value | target |"
    echo "| --- | --- | --- |"
    echo "| $N pushes to new repositories, the slot busy | $(awk -v d=$((e - s)) -v n="$N" 'BEGIN {printf "%.1f s, %.1f ms a push", d / 1e9, d / 1e6 / n}') | |"
    echo "| jobq-worker processes, $N queues waiting (and the running job's) | $procs | ≤ 10 |"
    echo "| their RSS, summed | $((rss / 1024)) MiB (each:$each) | ≤ 64 MiB |"
    echo "| their threads, open files | $threads, $fds | |"
    echo "| their CPU while the jobs wait (10 s) | $cpupct % of a core | |"
    echo "| hook cost (async, exec runner) with $N queues waiting | $(printf %.2f "$hookms") ms | ≤ 10 ms |"
} | tee bench/out/waiting.md
