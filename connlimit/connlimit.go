package connlimit

import (
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/stagehand-dev/stagehand/metrics"
)

// Defaults, sized for a rack (README's flag table gives the reasoning).
const (
	// DefaultPerAddress: a host uses one or two connections at a time
	// (iPXE fetches one file after another; the installer adds its
	// user-data and callback), and one address behind NAT may carry a
	// whole rack of 20–40 hosts.
	DefaultPerAddress = 64
	// DefaultTotal: hundreds of hosts booting at once, each with a
	// connection or two, with room to spare, while staying far below the
	// descriptors a service is usually given (systemd: 524288 hard).
	DefaultTotal = 4096
	// Reserve is how many connections above Config.Total trusted
	// addresses may open: the operator's CLI and a monitoring scrape
	// need a handful, and they must never compete with strangers.
	Reserve = 64
	// maxTrusted bounds the addresses remembered by Trust; past it the
	// one trusted longest ago is forgotten.
	maxTrusted = 64
)

// Config bounds a Limiter. Zero values mean no cap.
type Config struct {
	PerAddress int // connections from one untrusted address at once
	Total      int // connections at once; trusted addresses may exceed it by Reserve
}

// Limiter counts the connections of the listeners it wraps. Safe for
// concurrent use; build it with New.
type Limiter struct {
	cfg Config

	mu      sync.Mutex
	open    int
	byAddr  map[netip.Addr]map[*conn]struct{}
	trusted map[netip.Addr]uint64 // address → trust sequence, for eviction
	seq     uint64                // connections and trusts, in order

	refusedAddr, refusedTotal, evicted atomic.Uint64
}

// New builds a limiter.
func New(cfg Config) *Limiter {
	return &Limiter{cfg: cfg, byAddr: map[netip.Addr]map[*conn]struct{}{}, trusted: map[netip.Addr]uint64{}}
}

// Listener wraps ln: its Accept returns only admitted connections, and
// resets the others itself.
func (l *Limiter) Listener(ln net.Listener) net.Listener { return &listener{Listener: ln, l: l} }

// Trust remembers a as an operator's address: its connections skip the
// per-address cap and may use the reserve. The api calls it for every
// request that presented the operator token.
func (l *Limiter) Trust(a netip.Addr) {
	a = a.Unmap()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	if _, ok := l.trusted[a]; !ok && len(l.trusted) >= maxTrusted {
		var old netip.Addr
		oldest := l.seq
		for t, s := range l.trusted {
			if s < oldest {
				old, oldest = t, s
			}
		}
		delete(l.trusted, old)
	}
	l.trusted[a] = l.seq
}

// ConnState is for http.Server.ConnState: a connection waiting for a
// request (new or idle) may be closed to make room at the total; one
// serving a request may not.
func (l *Limiter) ConnState(c net.Conn, st http.ConnState) {
	lc, ok := c.(*conn)
	if !ok {
		return
	}
	switch st {
	case http.StateNew, http.StateIdle:
		lc.idle.Store(true)
	case http.StateActive, http.StateHijacked:
		lc.idle.Store(false)
	}
}

// reason is why a connection was refused, as the metric labels it.
type reason int

const (
	admitted reason = iota
	overAddress
	overTotal
)

// admit decides for a connection just accepted; on admission it returns
// the counted connection, and the idle connection it displaced (already
// uncounted; the caller closes it outside the lock).
func (l *Limiter) admit(c net.Conn) (*conn, *conn, reason) {
	remote, trusted := l.classify(c)
	l.mu.Lock()
	defer l.mu.Unlock()
	if !trusted {
		trusted = l.trusted[remote] != 0
	}
	var victim *conn
	switch {
	case trusted:
		if l.cfg.Total > 0 && l.open >= l.cfg.Total+Reserve {
			return nil, nil, overTotal
		}
	case l.cfg.PerAddress > 0 && len(l.byAddr[remote]) >= l.cfg.PerAddress:
		return nil, nil, overAddress
	case l.cfg.Total > 0 && l.open >= l.cfg.Total:
		if victim = l.idlest(); victim == nil {
			return nil, nil, overTotal
		}
		l.forget(victim)
	}
	l.seq++
	lc := &conn{Conn: c, l: l, addr: remote, seq: l.seq, trusted: trusted}
	lc.idle.Store(true)
	l.open++
	if l.byAddr[remote] == nil {
		l.byAddr[remote] = map[*conn]struct{}{}
	}
	l.byAddr[remote][lc] = struct{}{}
	return lc, victim, admitted
}

// classify returns a connection's source address and whether it comes
// from this host (the source is the address it reached us on). A
// connection without IP addresses is counted under the zero address.
func (l *Limiter) classify(c net.Conn) (netip.Addr, bool) {
	r, ok1 := c.RemoteAddr().(*net.TCPAddr)
	lo, ok2 := c.LocalAddr().(*net.TCPAddr)
	if !ok1 || !ok2 {
		return netip.Addr{}, false
	}
	remote := r.AddrPort().Addr().Unmap()
	return remote, remote == lo.AddrPort().Addr().Unmap()
}

// idlest returns the oldest idle untrusted connection of the address
// holding the most connections, or nil if every connection is busy.
// Called with mu held; it runs only at the total, over at most Total
// connections.
func (l *Limiter) idlest() *conn {
	var best *conn
	most := 0
	for _, cs := range l.byAddr {
		if len(cs) < most {
			continue
		}
		var oldest *conn
		for c := range cs {
			if c.idle.Load() && !c.trusted && (oldest == nil || c.seq < oldest.seq) {
				oldest = c
			}
		}
		if oldest != nil && (len(cs) > most || oldest.seq < best.seq) {
			best, most = oldest, len(cs)
		}
	}
	return best
}

// forget uncounts c; called with mu held, once per connection.
func (l *Limiter) forget(c *conn) {
	cs := l.byAddr[c.addr]
	if _, ok := cs[c]; !ok {
		return
	}
	delete(cs, c)
	if len(cs) == 0 {
		delete(l.byAddr, c.addr)
	}
	l.open--
}

func (l *Limiter) release(c *conn) {
	l.mu.Lock()
	l.forget(c)
	l.mu.Unlock()
}

// Open is the number of connections counted now.
func (l *Limiter) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// WriteMetrics adds the limiter's gauge and counters to a scrape.
func (l *Limiter) WriteMetrics(mw *metrics.Writer) {
	mw.Gauge("stagehand_http_conns", "HTTP connections open now.", nil, float64(l.Open()))
	const help = "HTTP connections reset at accept: over the per-address cap, or at the total with no idle connection to close."
	mw.Counter("stagehand_http_conns_refused_total", help, metrics.L("reason", "per_address"), float64(l.refusedAddr.Load()))
	mw.Counter("stagehand_http_conns_refused_total", help, metrics.L("reason", "total"), float64(l.refusedTotal.Load()))
	mw.Counter("stagehand_http_conns_evicted_total", "Idle HTTP connections closed at the total to make room for a new one.", nil, float64(l.evicted.Load()))
}
