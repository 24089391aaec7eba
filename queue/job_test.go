package queue

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestValidName(t *testing.T) {
	for _, ok := range []string{"a", "repo", "foo/bar", "a.b-c_d@e+f", "x/y/z"} {
		if err := ValidName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "..", "../etc", "a/../b", "/abs", "a/", "a//b", ".hidden", "-flag", "a b", "a;b", "a\x00b", "%2F", strings.Repeat("a", 81)} {
		if ValidName(bad) == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}

// A record that decodes names a repository and queue whose directories
// stay inside the store, and survives a round trip unchanged.
func FuzzDecodeJob(f *testing.F) {
	f.Add([]byte(`{"repo":"r","id":1,"queue":"q","state":"queued"}`))
	f.Add([]byte(`{"repo":"../x","id":-1,"state":"bogus"}`))
	f.Add([]byte(`{"repo":"team/app","id":7,"queue":"ci/deploy","state":"running"}`))
	s := &Store{dir: "/data"}
	f.Fuzz(func(t *testing.T, data []byte) {
		j, err := decodeJob(data)
		if err != nil {
			return
		}
		for dir, depth := range map[string]int{s.jobDir(j.Repo, j.ID): 3, s.queueDir(j.Queue): 2} {
			rel, err := filepath.Rel("/data", dir)
			if err != nil || len(strings.Split(rel, "/")) != depth || strings.HasPrefix(rel, "..") || filepath.Clean(dir) != dir {
				t.Fatalf("%+v: directory %s is not where the store keeps it", j, dir)
			}
		}
		again, err := json.Marshal(j)
		if err != nil {
			t.Fatal(err)
		}
		j2, err := decodeJob(again)
		if err != nil || !reflect.DeepEqual(j, j2) {
			t.Errorf("round trip of %+v: %+v, %v", j, j2, err)
		}
	})
}

// A record from before origins were kept was a push's; a new one says how
// its job was started.
func TestStartedBy(t *testing.T) {
	tests := []struct {
		record string
		want   Origin
	}{
		{`{"repo":"r","id":1,"queue":"q","state":"succeeded"}`, OriginPush},
		{`{"repo":"r","id":1,"queue":"q","state":"succeeded","origin":"push"}`, OriginPush},
		{`{"repo":"r","id":1,"queue":"q","state":"queued","origin":"retry","retry_of":0}`, OriginRetry},
		{`{"repo":"r","id":1,"queue":"q","state":"running","origin":"run"}`, OriginRun},
	}
	for _, tt := range tests {
		j, err := decodeJob([]byte(tt.record))
		if err != nil {
			t.Fatalf("%s: %v", tt.record, err)
		}
		if got := j.StartedBy(); got != tt.want {
			t.Errorf("%s: started by %q, want %q", tt.record, got, tt.want)
		}
	}
}
