// Command sshdeploy is the deployment step of the tests' demo job: it
// writes its standard input to a file on another account over ssh, with
// the private key in the variable the job was given its secret as, and
// checks the server's key against a known_hosts line given to it. Static
// (CGO_ENABLED=0), so that it runs in the tests' busybox image.
//
//	sshdeploy KEYVAR USER@HOST:PORT KNOWN_HOSTS_LINE REMOTE_FILE < DATA
package main

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"golang.org/x/crypto/ssh"
)

func main() {
	if err := run(os.Args[1:], os.Stdin); err != nil {
		fmt.Fprintln(os.Stderr, "sshdeploy:", err)
		os.Exit(1)
	}
}

func run(args []string, data io.Reader) error {
	if len(args) != 4 {
		return fmt.Errorf("usage: sshdeploy KEYVAR USER@HOST:PORT KNOWN_HOSTS_LINE REMOTE_FILE")
	}
	key := os.Getenv(args[0])
	if key == "" {
		return fmt.Errorf("no key: $%s is not set", args[0])
	}
	signer, err := ssh.ParsePrivateKey([]byte(key))
	if err != nil {
		return fmt.Errorf("$%s: %w", args[0], err)
	}
	_, _, hostKey, _, _, err := ssh.ParseKnownHosts([]byte(args[2]))
	if err != nil {
		return fmt.Errorf("known hosts line: %w", err)
	}
	user, addr, ok := bytes.Cut([]byte(args[1]), []byte("@"))
	if !ok {
		return fmt.Errorf("%q is not USER@HOST:PORT", args[1])
	}
	c, err := ssh.Dial("tcp", string(addr), &ssh.ClientConfig{User: string(user),
		Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: ssh.FixedHostKey(hostKey)})
	if err != nil {
		return err
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		return err
	}
	s.Stdin = data
	s.Stdout, s.Stderr = os.Stdout, os.Stderr
	// The remote file's name is the test's own: no quoting needed.
	return s.Run("cat > " + args[3])
}
