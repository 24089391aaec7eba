package podman

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/containers/podman/v5/pkg/bindings"
)

// A checkout record is a file in the job's directory: whatever it names,
// clean-up removes only a checkout Run could have made.
func TestRemoveCheckoutRefusesOtherPaths(t *testing.T) {
	victim := t.TempDir()
	os.WriteFile(filepath.Join(victim, "keep"), []byte("x"), 0o600)
	for _, rec := range []string{victim, "", "jobq-checkout-relative", victim + "/jobq-checkout-x/..", "/"} {
		if err := removeCheckout(context.Background(), rec); err == nil {
			t.Errorf("record %q: removed without a word", rec)
		}
	}
	if _, err := os.Stat(filepath.Join(victim, "keep")); err != nil {
		t.Errorf("a record that names no checkout removed files: %v", err)
	}
}

// Directories a job shut (chmod 000), the checkout's own included, are
// opened and removed.
func TestRemoveCheckoutOpensShutDirectories(t *testing.T) {
	dir, err := os.MkdirTemp(t.TempDir(), "jobq-checkout-")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"a/b/c", "d"} {
		os.MkdirAll(filepath.Join(dir, d), 0o700)
		os.WriteFile(filepath.Join(dir, d, "f"), []byte("x"), 0o000)
	}
	for _, d := range []string{"a/b/c", "a/b", "a", "d", "."} {
		os.Chmod(filepath.Join(dir, d), 0)
	}
	// Root passes any mode: look at the modes openUp leaves.
	openUp(dir)
	for _, d := range []string{"a/b/c", "a/b", "a", "d", "."} {
		fi, err := os.Lstat(filepath.Join(dir, d))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o700 != 0o700 {
			t.Errorf("%s not opened: %v", d, fi.Mode())
		}
	}
	os.Chmod(dir, 0)
	if err := removeCheckout(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Errorf("checkout left: %v", err)
	}
}

// A removal that fails is asked again before it counts: Podman's own
// clean-up of a container that has just exited can make one fail (its shm
// mount busy) though the container goes all the same. A stand-in service
// answers each DELETE from a script; not-found counts as removed.
func TestRemoveAsksAgain(t *testing.T) {
	const busy = `{"cause":"device or resource busy","message":"removing container root filesystem: unlinkat userdata/shm: device or resource busy","response":500}`
	const gone = `{"cause":"no such container","message":"no such container","response":404}`
	for _, tt := range []struct {
		name    string
		answers []int // status of each DELETE; the last repeats
		asked   int
		wantErr bool
	}{
		{"removed", []int{200}, 1, false},
		{"busy, then removed", []int{500, 200}, 2, false},
		{"busy, then gone", []int{500, 500, 404}, 3, false},
		{"always busy", []int{500}, 5, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			asked := 0
			conn := fakeService(t, func(w http.ResponseWriter, req *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				if req.Method != http.MethodDelete {
					return // the ping
				}
				status := tt.answers[min(asked, len(tt.answers)-1)]
				asked++
				w.WriteHeader(status)
				switch status {
				case 200:
					w.Write([]byte(`[{"Id":"c0ffee","Err":null}]`))
				case 404:
					w.Write([]byte(gone))
				default:
					w.Write([]byte(busy))
				}
			})
			err := remove(conn, "c0ffee")
			if (err != nil) != tt.wantErr || asked != tt.asked {
				t.Errorf("remove: %v after %d questions; want error %v after %d", err, asked, tt.wantErr, tt.asked)
			}
		})
	}
}

// fakeService serves handler as a Podman 4.3.1 service on a unix socket of
// the test's own, and returns a connection to it.
func fakeService(t *testing.T, handler http.HandlerFunc) context.Context {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "podman.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Libpod-API-Version", "4.3.1")
		handler(w, req)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	conn, err := bindings.NewConnection(context.Background(), "unix://"+sock)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}
