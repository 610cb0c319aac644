package connlimit

import (
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

type listener struct {
	net.Listener
	l *Limiter
}

// Accept returns the next admitted connection. A refused one is reset
// (SO_LINGER 0: no FIN handshake, no TIME_WAIT) and closed here, so the
// server never spawns a handler for it.
func (ln *listener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		lc, victim, why := ln.l.admit(c)
		switch why {
		case admitted:
			if victim != nil {
				ln.l.evicted.Add(1)
				victim.Conn.Close()
			}
			return lc, nil
		case overAddress:
			ln.l.refusedAddr.Add(1)
		case overTotal:
			ln.l.refusedTotal.Add(1)
		}
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
	}
}

// conn is an admitted connection; closing it gives its slot back.
type conn struct {
	net.Conn
	l    *Limiter
	addr netip.Addr
	seq  uint64
	// trusted: from this host or an operator's address when admitted;
	// never closed to make room.
	trusted bool
	idle    atomic.Bool
	once    sync.Once
}

// Close gives the slot back (once) and closes the connection.
func (c *conn) Close() error {
	c.once.Do(func() { c.l.release(c) })
	return c.Conn.Close()
}

// ReadFrom passes net/http's response copy to the TCP connection, so
// that artifacts still go out by sendfile(2): net/http uses it only when
// the connection it was given is an io.ReaderFrom.
func (c *conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// CloseWrite half-closes, as net/http does before closing a connection
// it refused a request on (431, 400), so the client reads the answer
// before the reset.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
