// Package sshtunnel reaches a unix socket on another machine over ssh, as
// jobq's own ssh client: the one in the Podman bindings appends an unknown
// host's key to ~/.ssh/known_hosts and connects (trust on first use), has
// no keepalive and no dial timeout.
//
// A Tunnel checks the host key strictly against a known_hosts file it
// never writes, authenticates with an identity file or the ssh-agent, and
// serves a unix socket in a private directory that forwards each
// connection over its one ssh connection: every connection through it
// goes to the same destination with the same identity. Keepalives end a
// tunnel whose host has gone silent, and a later Dial removes the socket
// directories of processes that died without closing theirs.
package sshtunnel
