package slottable

import (
	"os"
	"slices"
	"testing"
)

// A slot is held by one file at a time, frees when closed, and keeps its
// text for the next holder; Take finds the lowest free one.
func TestTryTakeHeld(t *testing.T) {
	dir := t.TempDir()
	a, err := Try(dir, 0)
	if err != nil || a == nil {
		t.Fatal(a, err)
	}
	if err := Write(a, "alice\n"); err != nil {
		t.Fatal(err)
	}
	if b, err := Try(dir, 0); b != nil || err != nil {
		t.Errorf("a held slot taken again: %v %v", b, err)
	}
	if !Held(dir, 0) || Held(dir, 1) {
		t.Errorf("held: 0 %v, 1 %v; want true, false", Held(dir, 0), Held(dir, 1))
	}
	if _, err := os.Stat(Path(dir, 1)); !os.IsNotExist(err) {
		t.Errorf("Held made slot 1's file: %v", err)
	}
	b, err := Take(dir, 2)
	if err != nil || b == nil || b.Name() != Path(dir, 1) {
		t.Fatalf("Take: %v %v, want slot 1", b, err)
	}
	if c, err := Take(dir, 2); c != nil || err != nil {
		t.Errorf("Take of 2 with both held: %v %v", c, err)
	}
	c, err := Take(dir, -1)
	if err != nil || c == nil || c.Name() != Path(dir, 2) {
		t.Fatalf("unbounded Take: %v %v, want slot 2", c, err)
	}
	c.Close()
	b.Close()
	a.Close()
	a, err = Try(dir, 0)
	if err != nil || a == nil {
		t.Fatal("a closed slot is not free:", err)
	}
	defer a.Close()
	if text, err := Text(a); text != "alice\n" || err != nil {
		t.Errorf("text left: %q %v", text, err)
	}
	if err := Write(a, "bob"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(Path(dir, 0)); string(b) != "bob" {
		t.Errorf("file holds %q, want %q", b, "bob")
	}
}

// Scan reports held slots' texts and locks free ones below n, made or
// not; files that are not slots are ignored, and slots at or above n are
// let go.
func TestScan(t *testing.T) {
	dir := t.TempDir()
	h, _ := Try(dir, 1)
	Write(h, "u1")
	defer h.Close()
	h5, _ := Try(dir, 5)
	Write(h5, "u5")
	defer h5.Close()
	f4, _ := Try(dir, 4)
	f4.Close()
	for _, name := range []string{"lock", "x.lock", "-1.lock"} {
		os.WriteFile(dir+"/"+name, nil, 0o600)
	}
	held, free, err := Scan(dir, 3)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(held)
	if !slices.Equal(held, []string{"u1", "u5"}) {
		t.Errorf("held %q", held)
	}
	var got []string
	for _, f := range free {
		got = append(got, f.Name())
		if other, _ := Try(dir, 0); other != nil && f.Name() == Path(dir, 0) {
			t.Error("a free slot Scan returned is not locked")
		}
	}
	if !slices.Equal(got, []string{Path(dir, 0), Path(dir, 2)}) {
		t.Errorf("free %q", got)
	}
	for _, f := range free {
		f.Close()
	}
	if f, _ := Try(dir, 4); f == nil {
		t.Error("slot 4, at or above n, left locked")
	} else {
		f.Close()
	}
}
