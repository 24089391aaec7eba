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

// UIDBombScript is a job's ci.sh that, as root in its container, adds
// users 1001 to 1000+uids to /etc/passwd and, as each in turn (su), starts
// at most per sleeping processes, each counted in a file, until a fork
// fails; then prints the count (BombHeld) and holds them as BombScript
// does, until /source/release exists. A job held to per processes for
// each user ID alone starts about uids × per; it is bounded by that, and
// ends by itself within its timeout at worst.
func UIDBombScript(uids, per int) string {
	return `echo "ulimit -u $(ulimit -u); uid $(id -u)"
mkfifo /tmp/tick
: >/tmp/started
chmod 666 /tmp/started
u=1001; while [ $u -le ` + strconv.Itoa(1000+uids) + ` ]; do echo "u$u:x:$u:$u::/tmp:/bin/sh" >>/etc/passwd; u=$((u+1)); done
sh -c 'u=1001; while [ $u -le ` + strconv.Itoa(1000+uids) + ` ]; do su -s /bin/sh u$u -c "i=0; while [ \$i -lt ` + strconv.Itoa(per) + ` ]; do i=\$((i+1)); sh -c \"echo \$USER >>/tmp/started; exec sleep 150\" & done"; u=$((u+1)); done'
# No fork from here on while the sleepers hold the job's processes.
exec 3<>/tmp/tick
read -t 2 x <&3
n=0; users=""; while read l; do n=$((n+1)); case " $users " in *" $l "*) ;; *) users="$users $l" ;; esac; done </tmp/started
echo "bomb users:$users"
echo "bomb held: $n processes started"
while [ ! -e /source/release ]; do read -t 1 x <&3; done
kill -9 -1
echo "bomb released"
`
}

// BombUsers matches UIDBombScript's list of the users that started
// processes.
var BombUsers = regexp.MustCompile(`bomb users:((?: u\d+)*)\n`)
