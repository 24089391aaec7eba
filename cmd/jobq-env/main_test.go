package main

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestPrepare(t *testing.T) {
	files := map[string]string{
		"/run/secrets/key":   "-----BEGIN KEY-----\nabc\n-----END KEY-----\n",
		"/run/secrets/token": "t0ken-value",
		"/run/secrets/nul":   "abc\x00def",
		"/run/secrets/big":   strings.Repeat("x", 64<<10+1),
	}
	read := func(p string) ([]byte, error) {
		v, ok := files[p]
		if !ok {
			return nil, &os.PathError{Op: "open", Path: p, Err: errors.New("no such file or directory")}
		}
		return []byte(v), nil
	}
	base := []string{"PATH=/bin", "TOKEN=old", "HOME=/root"}
	for _, tc := range []struct {
		name    string
		args    []string
		env     []string // the command's, sorted
		argv    []string
		code    int
		msgHas  string
		noValue bool
	}{
		{name: "two variables, one replaced", args: []string{"key=SSH_KEY", "token=TOKEN", "--", "sh", "-c", "x"},
			env: []string{"HOME=/root", "PATH=/bin", "SSH_KEY=" + files["/run/secrets/key"], "TOKEN=t0ken-value"}, argv: []string{"sh", "-c", "x"}},
		{name: "no variables", args: []string{"--", "true"}, env: []string{"HOME=/root", "PATH=/bin", "TOKEN=old"}, argv: []string{"true"}},
		{name: "a command that looks like a pair", args: []string{"token=T", "--", "a=b", "--"}, env: []string{"HOME=/root", "PATH=/bin", "T=t0ken-value", "TOKEN=old"}, argv: []string{"a=b", "--"}},
		{name: "NUL in the value", args: []string{"nul=V", "--", "true"}, code: exitSecret, msgHas: "NUL", noValue: true},
		{name: "too large", args: []string{"big=V", "--", "true"}, code: exitSecret, msgHas: "64 KiB"},
		{name: "missing file", args: []string{"gone=V", "--", "true"}, code: exitSecret, msgHas: "cannot read /run/secrets/gone"},
		{name: "path in the name", args: []string{"../etc/passwd=V", "--", "true"}, code: exitSecret, msgHas: "is not NAME=VAR"},
		{name: "slash in the name", args: []string{"a/b=V", "--", "true"}, code: exitSecret, msgHas: "is not NAME=VAR"},
		{name: "dot-dot name", args: []string{"..=V", "--", "true"}, code: exitSecret, msgHas: "is not NAME=VAR"},
		{name: "bad variable", args: []string{"token=1X", "--", "true"}, code: exitSecret, msgHas: "is not NAME=VAR"},
		{name: "variable twice", args: []string{"token=X", "key=X", "--", "true"}, code: exitSecret, msgHas: "twice"},
		{name: "control bytes shown escaped", args: []string{"a\nb=V", "--", "true"}, code: exitSecret, msgHas: `"a\x0ab=V"`},
		{name: "no separator", args: []string{"token=X", "true"}, code: exitSecret, msgHas: "is not NAME=VAR"},
		{name: "no command", args: []string{"token=X", "--"}, code: exitSecret, msgHas: "no command"},
		{name: "nothing", args: nil, code: exitSecret, msgHas: "no command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, argv, code, msg := prepare(tc.args, base, read)
			if code != tc.code || tc.msgHas != "" && !strings.Contains(msg, tc.msgHas) {
				t.Fatalf("code %d, msg %q; want %d and %q", code, msg, tc.code, tc.msgHas)
			}
			for _, v := range files {
				if strings.Contains(msg, v) || strings.Contains(msg, "abc") {
					t.Fatalf("the message %q shows a value", msg)
				}
			}
			if tc.code != 0 {
				return
			}
			slices.Sort(env)
			if !slices.Equal(env, tc.env) || !slices.Equal(argv, tc.argv) {
				t.Fatalf("env %q argv %q; want %q %q", env, argv, tc.env, tc.argv)
			}
		})
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "exe")
	noexec := filepath.Join(dir, "noexec")
	os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(noexec, []byte("x"), 0o644)
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	env := []string{"PATH=/nonexistent:" + dir}
	for _, tc := range []struct {
		name, want string
		code       int
	}{
		{"exe", exe, 0},
		{"/abs/path", "/abs/path", 0},
		{"./rel", "./rel", 0},
		{"noexec", "", exitCannotExec},
		{"sub", "", exitNotFound},
		{"missing", "", exitNotFound},
		{"", "", exitNotFound},
	} {
		got, code, _ := lookPath(tc.name, env)
		if got != tc.want || code != tc.code {
			t.Errorf("lookPath(%q) = %q, %d; want %q, %d", tc.name, got, code, tc.want, tc.code)
		}
	}
}
