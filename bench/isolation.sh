#!/usr/bin/env bash
# What per-job ID ranges cost, before and after in one run:
#   1. job overhead, as bench/run.sh measures it (push to result of `true`,
#      synchronous, --network=none), jobq at BEFORE and at the work tree,
#      against the article's pipeline;
#   2. Podman's chown of the checkout (:U) into a job's range, on the
#      4,491-file checkout bench/run.sh uses: `podman run true` in a range
#      (--uidmap/--gidmap) with the checkout mounted without and with :U.
#
#   bench/isolation.sh BEFORE     BEFORE: the commit to compare with
#
# As root on Debian 12, after bench/run.sh has installed what it needs.
# A root worker takes job ranges from root's subordinate IDs: root gets a
# range for the run (usermod; removed at the end) if it has none.
set -euo pipefail
cd "$(dirname "$0")/.."
BEFORE=${1:?usage: bench/isolation.sh COMMIT-BEFORE}
RUNS=${RUNS:-15}
ROUNDS=${ROUNDS:-3}
export PATH="$PATH:/usr/local/go/bin"
export CGO_ENABLED=0

W=$(mktemp -d /var/tmp/jobq-bench-iso.XXXXXX)
[ -n "$W" ] && [ -d "$W" ] || exit 1
chmod 0755 "$W"
added=0
cleanup() {
    [ -z "${svc:-}" ] || kill "$svc" 2>/dev/null || true
    for b in before after; do pkill -f "$W/$b/jobq-worker" 2>/dev/null || true; done
    # usermod --del-subuids refuses root ("currently used by process 2").
    if ((added)); then
        for f in /etc/subuid /etc/subgid; do [ -e "$f.lock" ] || sed -i '/^root:1000000000:65536$/d' "$f"; done
    fi
    rm -rf "$W"
}
trap cleanup EXIT
if ! grep -q '^root:' /etc/subuid || ! grep -q '^root:' /etc/subgid; then
    usermod --add-subuids 1000000000-1000065535 --add-subgids 1000000000-1000065535 root
    added=1
fi

echo "bench: building $BEFORE and the work tree" >&2
mkdir -p "$W/src-before"
git archive "$BEFORE" | tar -x -C "$W/src-before"
make -s -C "$W/src-before" build BINDIR="$W/before"
make -s build BINDIR="$W/after"
TAGS=$(sed -n 's/^TAGS *:= *//p' Makefile)
go build -tags "$TAGS" -trimpath -o "$W/checkout" ./bench/checkout

# The rootful service, busybox image and repository, as bench/run.sh has them.
. bench/env.sh


echo "bench: job overhead" >&2
for b in before after; do
    script "jobq-$b.sh" "cd $W/repo.git && JOBQ_HOME=$W/home-$b GL_REPO=trivial JOBQ_NETWORK=none JOBQ_COMMAND='$IMG true' exec $W/$b/jobq hook < $W/line > /dev/null 2>&1"
done
# In ROUNDS rounds, so that a change of the machine's load (other users of
# these shared machines) does not fall on one command only; medians of all.
for round in $(seq "$ROUNDS"); do
    hyperfine -w 3 -r "$RUNS" --export-json "$W/overhead-$round.json" "$W/jobq-before.sh" "$W/jobq-after.sh" "$W/article.sh" >/dev/null 2>&1
done
for b in before after; do grep -q "succeeded" "$W/home-$b/repos/trivial/0/log"; done
grep -q "succeeded" "$W/home-after/repos/trivial/$((ROUNDS * (RUNS + 3) - 1))/log"
med() { jq -s "[.[].results[$1].times[]] | sort | .[length / 2 | floor] * 1000" "$W"/overhead-*.json; }
jb=$(med 0); ja=$(med 1); ar=$(med 2)
printf 'job overhead: before %.0f ms (%.2fx), after %.0f ms (%.2fx), article %.0f ms\n' \
    "$jb" "$(echo "$jb / $ar" | bc -l)" "$ja" "$(echo "$ja / $ar" | bc -l)" "$ar"

echo "bench: chown of a checkout into a range (:U)" >&2
big_repo
prep="rm -rf $W/co && mkdir $W/co && $W/checkout $W/big.git $BIGREV $W/co"
map="--uidmap 0:1000000000:4096 --gidmap 0:1000000000:4096"
hyperfine -w 2 -r "$RUNS" -p "$prep" --export-json "$W/chown.json" \
    "env -u CONTAINER_HOST podman run --rm --network=none $map -v $W/co:/source $IMG true" \
    "env -u CONTAINER_HOST podman run --rm --network=none $map -v $W/co:/source:U $IMG true" >/dev/null 2>&1
p=$(ms "$W/chown.json" 0); u=$(ms "$W/chown.json" 1)
printf 'checkout of %d files, podman run in a range: %.0f ms, with :U %.0f ms (+%.0f ms)\n' "$files" "$p" "$u" "$(echo "$u - $p" | bc -l)"
