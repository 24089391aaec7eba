package web

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
)

// defaultPerClient is a client's share of the followers when
// MaxFollowersPerClient is not set: more than a browser's six connections
// to one server (HTTP/1.1), for a few people behind one address, and a
// sixteenth of the default 256.
const defaultPerClient = 16

func (s *Server) perClient() int {
	if s.MaxFollowersPerClient > 0 {
		return s.MaxFollowersPerClient
	}
	return defaultPerClient
}

// client names who a follower counts against: an authenticated visitor
// by their user name (one person, from wherever they follow), anyone else
// by their address. The address is the connection's, or, where
// ClientHeader is set, what the proxy in front says it is; an IPv6 address
// counts by its /64, which one machine may hold whole.
func (s *Server) client(r *http.Request, user string) string {
	if user != Anonymous {
		return "user " + user
	}
	addr := remoteAddr(r.RemoteAddr)
	if s.ClientHeader != "" {
		if a, ok := headerAddr(r.Header.Values(s.ClientHeader)); ok {
			addr = a
		}
	}
	if !addr.IsValid() {
		return "addr ?"
	}
	addr = addr.Unmap()
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return "addr " + p.String()
	}
	return "addr " + addr.String()
}

// remoteAddr reads the connection's "host:port"; a CGI gateway's
// REMOTE_ADDR may come without the port.
func remoteAddr(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr()
	}
	host, _, err := net.SplitHostPort(s)
	if err != nil {
		host = s
	}
	a, _ := netip.ParseAddr(host)
	return a
}

// headerAddr reads the address a proxy set: the last one of the header's
// comma-separated values (X-Forwarded-For is a list, each proxy adding the
// address it saw at its end; what comes before is the visitor's to make
// up). Anything but an address is ignored.
func headerAddr(values []string) (netip.Addr, bool) {
	if len(values) == 0 {
		return netip.Addr{}, false
	}
	last := values[len(values)-1]
	if i := strings.LastIndexByte(last, ','); i >= 0 {
		last = last[i+1:]
	}
	a, err := netip.ParseAddr(strings.TrimSpace(last))
	return a, err == nil
}

// shares counts the followers each client holds.
type shares struct {
	mu sync.Mutex
	n  map[string]int
}

// take counts one more follower for client, unless it holds limit already.
func (c *shares) take(client string, limit int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[client] >= limit {
		return false
	}
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[client]++
	return true
}

// give counts one follower of client fewer; a client holding none is
// forgotten, so that the map holds only clients that follow now.
func (c *shares) give(client string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[client]--; c.n[client] <= 0 {
		delete(c.n, client)
	}
}
