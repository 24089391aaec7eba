package testenv

import (
	"regexp"
	"strconv"
)

// BombMax is the most processes BombScript starts, where nothing limits
// the job: a test's bomb is bounded, whatever the code under test does.
const BombMax = 2000

// BombScript is a job's ci.sh that starts at most BombMax sleeping
// processes, each counted in a file, until a fork fails (busybox's sh then
// ends the shell that tried), and prints how many it started (BombHeld).
// It then holds them without forking (sh's builtins only) until
// /source/release exists, and ends them: the job ends by itself, within
// its timeout at worst, and its processes with it.
var BombScript = `echo "ulimit -u $(ulimit -u) -n $(ulimit -n); oom_score_adj $(cat /proc/self/oom_score_adj)"
mkfifo /tmp/tick
sh -c 'i=0; while [ $i -lt ` + strconv.Itoa(BombMax) + ` ]; do i=$((i+1)); sh -c "echo >>/tmp/started; exec sleep 150" & done'
# No fork from here on while the sleepers hold the job's processes.
exec 3<>/tmp/tick
read -t 1 x <&3
n=0; while read l; do n=$((n+1)); done </tmp/started
echo "bomb held: $n processes started"
while [ ! -e /source/release ]; do read -t 1 x <&3; done
kill -9 -1
echo "bomb released"
`

// BombHeld matches BombScript's count of the processes it started.
var BombHeld = regexp.MustCompile(`bomb held: (\d+) processes started`)
