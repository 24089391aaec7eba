package remote

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobq/jobq/internal/testenv"
)

// artScript builds on a build host what a job hands back, and plants a
// symlink out and a file over the bound.
const artScript = `mkdir -p dist report
echo binary > dist/app.bin
echo '<p>report</p>' > report/index.html
ln -s /etc report/etc
dd if=/dev/zero of=dist/big.bin bs=1024 count=3072 2>/dev/null
`

// A build host's job hands its artifacts back through the same archive
// endpoint, over the ssh tunnel: collected before its container and
// volume go, listed and fetched over ssh here.
func testRemoteArtifacts(t *testing.T, h *testenv.BuildHost) {
	pushScript(t, "rart", artScript)
	r := follow(t, "rart", 0)
	if r.Code != 0 {
		t.Fatalf("jobq rart 0: %s", r)
	}
	for _, want := range []string{"jobq: build host b1\n", `jobq: artifacts: "report/etc" left out: a symlink`,
		`jobq: artifacts: "dist/big.bin" left out: 3.0 MiB, over what is left of JOBQ_ARTIFACTS_MAX's 2.0 MiB`,
		"jobq: artifacts: 2 files, 21 bytes collected"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("log lacks %q:\n%s", want, r.Stdout)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l := env.SSH(ctx, "alice", "jobq", "artifacts", "rart", "0", "--json")
	var list []struct {
		Path string `json:"path"`
		Size int64  `json:"size"`
	}
	if err := json.Unmarshal([]byte(l.Stdout), &list); err != nil {
		t.Fatalf("jobq artifacts --json: %v: %s", err, l)
	}
	if got := fmt.Sprint(list); got != "[{dist/app.bin 7} {report/index.html 14}]" {
		t.Errorf("artifacts %s", got)
	}
	if f := env.SSH(ctx, "alice", "jobq", "artifacts", "rart", "0", "dist/app.bin"); f.Code != 0 || f.Stdout != "binary\n" {
		t.Errorf("one artifact: %s", f)
	}
	testenv.WaitUntil(t, "rart 0 is cleaned up", time.Minute, func() bool {
		ents, err := os.ReadDir(filepath.Join(env.DataDir(), "repos", "rart", "0", "run"))
		return err != nil || len(ents) == 0
	})
	if got := leftovers(t, h); got != "" {
		t.Errorf("host keeps:\n%s", got)
	}
}
