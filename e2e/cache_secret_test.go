package e2e

import (
	"strings"
	"testing"
)

func init() { confParts = append(confParts, cacheSecretConf) }

// cachesecret: a podman repository whose master is granted a secret,
// with a cache; carol may push dev only.
const cacheSecretConf = `
repo cachesecret
    RW+     = alice
    RW  dev = carol
    option hook.post-receive = jobq
    option ENV.JOBQ_ASYNC = "1"
    option ENV.JOBQ_COMMAND = "localhost/jobq-busybox:latest sh ci.sh"
    option ENV.JOBQ_CACHE = "/root/.cache"
    option ENV.JOBQ_SECRETS = "cachesecret_key@refs/heads/master"
`

// master's job keeps its credential in its cache, as docker login, npm
// or a deploy tool would; dev's job, whose cache starts as a copy of
// master's, prints what it finds there.
const cacheSecretScript = `if [ "$GIT_REF" = refs/heads/master ]; then
  cat /run/secrets/cachesecret_key > /root/.cache/creds || echo NO-SECRET-FILE
  echo "master printed: $(cat /run/secrets/cachesecret_key)"
else
  echo "dev reads: $(cat /root/.cache/creds 2>/dev/null || echo nothing)"
fi
`

// TestCacheDoesNotRevealWithheldSecrets: a value of the repository's
// secrets that a job was not given is still masked in its output, so
// what a protected job left in the cache does not reach the log of a
// job its pusher may read.
func TestCacheDoesNotRevealWithheldSecrets(t *testing.T) {
	const value = "cachesecret-master-only-4b1f9e"
	setSecret(t, "cachesecret_key", value)
	pushFilesAs(t, "alice", "cachesecret", "refs/heads/master", map[string]string{"ci.sh": cacheSecretScript})
	id := lastJob(t, "cachesecret")
	mlog := follow(t, "alice", "cachesecret", id).Stdout
	if strings.Contains(mlog, value) || strings.Contains(mlog, "NO-SECRET-FILE") || !strings.Contains(mlog, "master printed: ***") {
		t.Fatalf("master job %d: want its secret given and masked, log:\n%s", id, mlog)
	}
	waitIdle(t, "cachesecret")
	pushFilesAs(t, "carol", "cachesecret", "refs/heads/dev", map[string]string{"ci.sh": cacheSecretScript})
	id = lastJob(t, "cachesecret")
	dlog := follow(t, "carol", "cachesecret", id).Stdout
	if strings.Contains(dlog, value) {
		t.Errorf("dev job %d: the withheld secret's value is in its log:\n%s", id, dlog)
	}
	if !strings.Contains(dlog, "dev reads: ***") {
		t.Errorf("dev job %d: want the cache's copy of the value masked, log:\n%s", id, dlog)
	}
	if !strings.Contains(dlog, "secret cachesecret_key withheld") {
		t.Errorf("dev job %d: want the line saying the secret is withheld, log:\n%s", id, dlog)
	}
	waitIdle(t, "cachesecret")
	// Nothing left behind: the next job's clean-up removes the volumes.
	if r := ssh("carol", "jobq", "cache", "rm", "cachesecret", "dev"); r.Code != 0 {
		t.Errorf("carol drops dev's cache: %s", r)
	}
	if r := ssh("alice", "jobq", "cache", "rm", "cachesecret"); r.Code != 0 {
		t.Errorf("alice drops the main cache: %s", r)
	}
}
