// Command jobq-env is the entrypoint of a podman job given a secret as a
// variable (JOBQ_SECRETS' NAME:VAR): it reads each secret's file under
// /run/secrets, sets the variables, and executes the job's own command in
// its place, as the container's process 1:
//
//	jobq-env NAME=VAR... -- COMMAND [ARG...]
//
// The variables are set here, inside the container, and never in the
// container's spec, where Podman 4 shows every variable to anyone who may
// run podman inspect. It is static (CGO_ENABLED=0) and links nothing of
// Podman's, so it runs in any image, and it prints no value: its errors
// name the secret and the variable only.
package main

import (
	"os"
	"strings"
	"syscall"
)

// dir is where the podman runner puts a job's secrets.
const dir = "/run/secrets"

// Exit statuses, as a shell's: 126 found but not executable, 127 not
// found; 125 for a secret that cannot be a variable.
const (
	exitSecret      = 125
	exitCannotExec  = 126
	exitNotFound    = 127
	maxValue        = 64 << 10
	secretNameChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
)

func main() {
	env, argv, code, msg := prepare(os.Args[1:], os.Environ(), os.ReadFile)
	if msg != "" {
		fail(code, msg)
	}
	path, code, msg := lookPath(argv[0], env)
	if msg != "" {
		fail(code, msg)
	}
	err := syscall.Exec(path, argv, env)
	code = exitCannotExec
	if err == syscall.ENOENT {
		code = exitNotFound
	}
	fail(code, argv[0]+": "+err.Error())
}

func fail(code int, msg string) {
	os.Stderr.WriteString("jobq: " + msg + "\n")
	os.Exit(code)
}

// prepare reads the NAME=VAR pairs before "--" and returns the command's
// environment (env with each VAR set to the file's content) and argv; or
// an exit status and a message, which never holds a value.
func prepare(args, env []string, readFile func(string) ([]byte, error)) (newEnv, argv []string, code int, msg string) {
	i := 0
	vars := map[string]string{}
	var order []string
	for ; i < len(args) && args[i] != "--"; i++ {
		name, v, ok := strings.Cut(args[i], "=")
		if !ok || !validName(name) || !validVar(v) {
			return nil, nil, exitSecret, "jobq-env: " + quote(args[i]) + " is not NAME=VAR"
		}
		if _, dup := vars[v]; dup {
			return nil, nil, exitSecret, "jobq-env: the variable " + v + " is given twice"
		}
		b, err := readFile(dir + "/" + name)
		if err != nil {
			return nil, nil, exitSecret, "secret " + name + ": cannot read " + dir + "/" + name + " for the variable " + v + ": " + errText(err)
		}
		if len(b) > maxValue {
			return nil, nil, exitSecret, "secret " + name + " is larger than 64 KiB: it cannot be the variable " + v
		}
		if strings.IndexByte(string(b), 0) >= 0 {
			return nil, nil, exitSecret, "secret " + name + " holds a NUL byte, which no variable can: read it from " + dir + "/" + name + " instead of " + v
		}
		vars[v] = string(b)
		order = append(order, v)
	}
	if i == len(args) || i+1 == len(args) {
		return nil, nil, exitSecret, "jobq-env: no command (jobq-env NAME=VAR... -- COMMAND [ARG...])"
	}
	argv = args[i+1:]
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if _, set := vars[k]; !set {
			newEnv = append(newEnv, kv)
		}
	}
	for _, v := range order {
		newEnv = append(newEnv, v+"="+vars[v])
	}
	return newEnv, argv, 0, ""
}

// errText is err without the path os.ReadFile puts in it (given already).
func errText(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}

// lookPath finds the command as runc does for a container's process: a
// name with a slash as it is, any other in the PATH of env.
func lookPath(name string, env []string) (string, int, string) {
	if name == "" {
		return "", exitNotFound, "an empty command"
	}
	if strings.Contains(name, "/") {
		return name, 0, ""
	}
	path := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	if path == "" {
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	denied := false
	for _, d := range strings.Split(path, ":") {
		if d == "" {
			d = "."
		}
		p := d + "/" + name
		var st syscall.Stat_t
		if syscall.Stat(p, &st) != nil || st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
			continue
		}
		if syscall.Access(p, 1) == nil { // X_OK
			return p, 0, ""
		}
		denied = true
	}
	if denied {
		return "", exitCannotExec, name + ": permission denied"
	}
	return "", exitNotFound, name + ": not found in PATH " + quote(path)
}

func validName(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(secretNameChars, s[i]) < 0 {
			return false
		}
	}
	return true
}

func validVar(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// quote shows s, its control bytes escaped, cut to 64 bytes: it is an
// argument of the spec, not a value, but may be anything.
func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			const hex = "0123456789abcdef"
			b.WriteString(`\x`)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
