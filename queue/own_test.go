package queue

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// WriteOwn records each line of jobq's at the offset it lands on (after
// the newline it adds to end a job's line), before it writes it; a log
// that held bytes before any record (an old job's) is legacy up to there;
// a record line read half-written is taken once it is whole.
func TestWriteOwnRecords(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "log")
	log, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	log.WriteString("old header\npartial") // 18 bytes, before any record
	if n, err := WriteOwn(log, "jobq: a\njobq: b\n"); n != 17 || err != nil {
		t.Fatalf("WriteOwn: %d, %v", n, err)
	}
	own := OpenOwn(path)
	defer own.Close()
	own.Refresh()
	for _, tt := range []struct {
		off    int64
		lines  []string
		legacy bool
	}{
		{0, nil, true}, {11, nil, true}, {18, nil, false}, {19, []string{"jobq: a\n"}, false}, {27, []string{"jobq: b\n"}, false},
	} {
		if lines, legacy := own.At(tt.off); !slices.Equal(lines, tt.lines) || legacy != tt.legacy {
			t.Errorf("At(%d) = %q, %v; want %q, %v", tt.off, lines, legacy, tt.lines, tt.legacy)
		}
	}
	// Half a record line, then the rest.
	rec, _ := os.OpenFile(filepath.Join(dir, "own"), os.O_WRONLY|os.O_APPEND, 0)
	rec.WriteString(`35 "jobq: c`)
	own.Refresh()
	if lines, _ := own.At(35); lines != nil {
		t.Errorf("a half-written record line was taken: %q", lines)
	}
	rec.WriteString(`\n"` + "\nnonsense\n")
	rec.Close()
	own.Refresh()
	if lines, _ := own.At(35); !slices.Equal(lines, []string{"jobq: c\n"}) {
		t.Errorf("At(35) = %q once whole", lines)
	}
	// No record at all: every offset is legacy.
	none := OpenOwn(filepath.Join(t.TempDir(), "log"))
	none.Refresh()
	if _, legacy := none.At(0); !legacy {
		t.Error("a log without a record is not legacy")
	}
}

// A line whose record cannot be written is written all the same (shown
// as the job's rather than lost), and WriteOwn says why.
func TestWriteOwnWithoutRecord(t *testing.T) {
	dir := t.TempDir()
	log, err := os.OpenFile(filepath.Join(dir, "log"), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	os.Mkdir(filepath.Join(dir, "own"), 0o700) // not a file: the record fails
	if n, err := WriteOwn(log, "jobq: failed\n"); n != 13 || err == nil {
		t.Errorf("WriteOwn: %d, %v; want the line written and an error", n, err)
	}
	if b, _ := os.ReadFile(log.Name()); string(b) != "jobq: failed\n" {
		t.Errorf("log %q", b)
	}
}

// BenchmarkWriteOwn writes a header's four lines of jobq's, then a
// result line, as a job's worker does; plain writes them without a
// record, as before records were kept.
func BenchmarkWriteOwn(b *testing.B) {
	const hdr = "jobq: job 0 of r, queue q, pushed by alice\njobq: ref refs/heads/main, revision 0123\n" +
		"jobq: runner podman: image sh ci.sh\njobq: queued 2026-12-06 23:00:00, started 2026-12-06 23:00:00\n"
	const result = "jobq: succeeded, exit code 0, after 1s\n"
	for _, recorded := range []bool{false, true} {
		b.Run(fmt.Sprintf("recorded=%v", recorded), func(b *testing.B) {
			dir := b.TempDir()
			for i := 0; b.Loop(); i++ {
				// A job directory each, as jobs have.
				d := filepath.Join(dir, strconv.Itoa(i))
				os.Mkdir(d, 0o700)
				log, err := os.OpenFile(filepath.Join(d, "log"), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
				if err != nil {
					b.Fatal(err)
				}
				if recorded {
					WriteOwn(log, hdr)
					log.WriteString("output")
					WriteOwn(log, result)
				} else {
					log.WriteString(hdr)
					log.WriteString("output\n")
					log.WriteString(result)
				}
				log.Close()
			}
		})
	}
}
