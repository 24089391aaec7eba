package podman

import (
	"context"
	"os"
	"path/filepath"
	"testing"
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
