package notify

import (
	"testing"

	"github.com/jobq/jobq/queue"
)

// BenchmarkPrepare is what notifications add to a job's path: deciding
// and recording them (one synced file, one index entry) before the
// result; the result's own write is not counted.
func BenchmarkPrepare(b *testing.B) {
	for _, on := range []string{"failure", "change"} {
		b.Run(on, func(b *testing.B) {
			s, err := queue.Open(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			o := queue.Options{Notify: []string{"https://hooks.example.org/jobq", "mailto:ops@example.org"}, NotifyOn: on}
			var js []*queue.Job
			for range 20 {
				j := &queue.Job{Repo: "r", Queue: queue.DefaultQueue("r"), Ref: "refs/heads/master", Options: o}
				if _, err := s.Enqueue(j); err != nil {
					b.Fatal(err)
				}
				s.Update("r", j.ID, func(r *queue.Job) error { r.State = queue.Succeeded; return nil })
				js = append(js, j)
			}
			j := js[len(js)-1]
			j.State = queue.Failed
			b.ResetTimer()
			for range b.N {
				if ok, err := Prepare(s, j); !ok || err != nil {
					b.Fatal(ok, err)
				}
			}
		})
	}
}
