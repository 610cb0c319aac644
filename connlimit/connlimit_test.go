package connlimit

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

// rig is a limited listener on 127.0.0.1 whose admitted connections are
// delivered on accepted.
type rig struct {
	t        *testing.T
	l        *Limiter
	ln       net.Listener
	accepted chan net.Conn
}

func newRig(t *testing.T, cfg Config) *rig {
	t.Helper()
	inner, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, l: New(cfg), accepted: make(chan net.Conn, 64)}
	r.ln = r.l.Listener(inner)
	go func() {
		for {
			c, err := r.ln.Accept()
			if err != nil {
				close(r.accepted)
				return
			}
			r.accepted <- c
		}
	}()
	t.Cleanup(func() { r.ln.Close() })
	return r
}

// dial connects from src and reports whether the server admitted the
// connection: an admitted one is delivered by Accept, a refused one is
// reset.
func (r *rig) dial(src string) (net.Conn, net.Conn) {
	r.t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp4", r.ln.Addr().String())
	if errors.Is(err, syscall.ECONNRESET) {
		return nil, nil // reset before connect(2) returned: loopback is that fast
	}
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { c.Close() })
	reset := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1)) // the server never writes: only a reset or our close ends it
		reset <- err
	}()
	select {
	case s := <-r.accepted:
		r.t.Cleanup(func() { s.Close() })
		return c, s
	case err := <-reset:
		if !errors.Is(err, syscall.ECONNRESET) {
			r.t.Fatalf("from %s: read %v, want a reset", src, err)
		}
		return c, nil
	case <-time.After(10 * time.Second):
		r.t.Fatalf("from %s: neither admitted nor reset", src)
	}
	return nil, nil
}

func (r *rig) counts() (addr, total, evicted uint64) {
	return r.l.refusedAddr.Load(), r.l.refusedTotal.Load(), r.l.evicted.Load()
}

func TestPerAddressCap(t *testing.T) {
	r := newRig(t, Config{PerAddress: 2})
	for i := range 2 {
		if _, s := r.dial("127.0.0.2"); s == nil {
			t.Fatalf("connection %d from 127.0.0.2 refused under the cap", i)
		}
	}
	if _, s := r.dial("127.0.0.2"); s != nil {
		t.Fatal("third connection from 127.0.0.2 admitted over a cap of 2")
	}
	if _, s := r.dial("127.0.0.3"); s == nil {
		t.Fatal("another address refused")
	}
	if a, tot, ev := r.counts(); a != 1 || tot != 0 || ev != 0 {
		t.Fatalf("refused per address %d, total %d, evicted %d; want 1, 0, 0", a, tot, ev)
	}
	// Closing one gives its slot back.
	_, s := r.dial("127.0.0.4")
	s.Close()
	if got := r.l.Open(); got != 3 {
		t.Fatalf("%d open after a close, want 3", got)
	}
}

// At the total, a newcomer takes the slot of the oldest idle connection
// of the address holding the most; with every connection busy, it is
// refused, and the busy ones are untouched.
func TestTotalEvictsIdleThenRefuses(t *testing.T) {
	r := newRig(t, Config{Total: 3})
	c1, s1 := r.dial("127.0.0.2")
	r.dial("127.0.0.2")
	_, s3 := r.dial("127.0.0.3")
	if _, s := r.dial("127.0.0.4"); s == nil {
		t.Fatal("newcomer refused while idle connections held the total")
	}
	c1.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c1.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("oldest idle connection of the busiest address: read %v, want EOF (closed for the newcomer)", err)
	}
	if _, _, ev := r.counts(); ev != 1 {
		t.Fatalf("evicted %d, want 1", ev)
	}
	s1.Close() // as net/http does once its read fails
	r.l.ConnState(s3, http.StateActive)
	r.l.mu.Lock()
	for _, cs := range r.l.byAddr {
		for c := range cs {
			c.idle.Store(false) // net/http reading a request on each
		}
	}
	r.l.mu.Unlock()
	if _, s := r.dial("127.0.0.5"); s != nil {
		t.Fatal("newcomer admitted while every connection was busy")
	}
	if a, tot, _ := r.counts(); a != 0 || tot != 1 {
		t.Fatalf("refused per address %d, total %d; want 0, 1", a, tot)
	}
}

// Trusted addresses (this host, or one that presented the operator
// token) skip the per-address cap and have a reserve above the total.
func TestTrustedReserve(t *testing.T) {
	r := newRig(t, Config{PerAddress: 1, Total: 2})
	r.l.Trust(netip.MustParseAddr("127.0.0.9"))
	r.dial("127.0.0.2")
	_, s := r.dial("127.0.0.3")
	r.l.ConnState(s, http.StateActive)
	for i := range Reserve {
		src := "127.0.0.9"
		if i%2 == 0 {
			src = "127.0.0.1" // the listener's own address
		}
		if _, s := r.dial(src); s == nil {
			t.Fatalf("trusted connection %d from %s refused", i, src)
		}
	}
	if _, s := r.dial("127.0.0.9"); s != nil {
		t.Fatal("trusted connection admitted past the reserve")
	}
	if _, _, ev := r.counts(); ev != 0 {
		t.Fatalf("trusted connections evicted %d others; they only use the reserve", ev)
	}
}

func TestTrustIsBounded(t *testing.T) {
	l := New(Config{})
	for i := range maxTrusted + 10 {
		l.Trust(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}))
	}
	if len(l.trusted) != maxTrusted {
		t.Fatalf("%d trusted addresses, want %d", len(l.trusted), maxTrusted)
	}
	if l.trusted[netip.AddrFrom4([4]byte{10, 0, 0, 0})] != 0 {
		t.Fatal("the first trusted address outlived newer ones past the bound")
	}
}

// net/http reaches sendfile and its half-close only through these.
func TestConnKeepsTCPInterfaces(t *testing.T) {
	r := newRig(t, Config{})
	_, s := r.dial("127.0.0.2")
	if _, ok := s.(io.ReaderFrom); !ok {
		t.Fatal("admitted connection is no io.ReaderFrom: responses would lose sendfile")
	}
	if _, ok := s.(interface{ CloseWrite() error }); !ok {
		t.Fatal("admitted connection cannot half-close")
	}
}
