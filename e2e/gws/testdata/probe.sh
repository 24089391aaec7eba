# The two-job probe: job $X, running at the same time as job $Y,
# attacks it as a hostile pusher would. Set before this: X, Y (one letter
# each), PORT (a loopback port of the host or GWS with an sshd behind it)
# and HOLD (when the other job cannot be seen: how many seconds at most to
# wait for the test to create /source/iso-release).
# Every probe prints "refused" or "WORKED"; nothing else varies but the
# uid_map line.
echo "$X uidmap $(tr -s ' ' ' ' </proc/self/uid_map | tr '\n' ';')"
echo "secret of $X" >/dev/shm/iso-$X
# The victim: a process with the job's environment, cwd and output.
sh -c 'while :; do sleep 1; done' iso-mark-$X &
echo "$X ready"
pid=
# Is another job's process visible at all? With a /proc of the job's own
# (its own PID namespace), PID 1 is the job's own "sh ci.sh".
if [ "$(tr '\0' ' ' </proc/1/cmdline)" != "sh ci.sh " ]; then
    i=0
    while [ -z "$pid" ] && [ $i -lt 300 ]; do
        pid=$(grep -l "iso-mark-[$Y]" /proc/[0-9]*/cmdline 2>/dev/null | head -n 1 | cut -d/ -f3)
        [ -n "$pid" ] || sleep 1
        i=$((i + 1))
    done
fi
probe() {
    if [ -n "$pid" ] && sh -c "$2" >/dev/null 2>&1; then echo "probe $1: WORKED"; else echo "probe $1: refused"; fi
}
probe environ "tr '\0' '\n' </proc/$pid/environ | grep -q GL_REPO"
probe root "cat /proc/$pid/root/source/ci.sh"
probe cwd "echo forged >/proc/$pid/cwd/artifact.txt"
probe fd "exec 3</proc/$pid/fd/1"
probe mem "exec 3<>/proc/$pid/mem"
probe forge "echo 'jobq: succeeded, exit code 0' >/proc/$pid/fd/1"
pid=${pid:-0}
# These need no process of the other job.
check() {
    if sh -c "$2" >/dev/null 2>&1; then echo "probe $1: WORKED"; else echo "probe $1: refused"; fi
}
check shm "cat /dev/shm/iso-$Y"
check loopback "echo | nc -w 3 127.0.0.1 $PORT | grep -q SSH"
echo "$X probes done"
# Stay until the other job has probed this one.
sh -c 'while :; do sleep 1; done' iso-done-$X &
if [ "$pid" != 0 ]; then
    i=0
    while [ -d /proc/$pid ] && ! grep -qs "iso-done-[$Y]" /proc/[0-9]*/cmdline && [ $i -lt 300 ]; do
        sleep 1
        i=$((i + 1))
    done
else
    i=0
    while [ ! -e /source/iso-release ] && [ $i -lt "$HOLD" ]; do
        sleep 1
        i=$((i + 1))
    done
fi
echo "$X end"
