package ra

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/ndp"
	"github.com/rs/zerolog"

	"github.com/stagehand-dev/stagehand/metrics"
)

// maxRouters bounds the other routers remembered: one is enough to stand
// down, and a link has a few at most.
const maxRouters = 64

// A solicitation from a host not (yet) known as booting is held this
// long for its DHCP reply: iPXE starts its IPv6 and DHCP configuration
// at once, so its first solicitation may arrive before stagehand has
// answered its DISCOVER, and unanswered it costs the host iPXE's next
// try (0.25 s later; one boot in six in bench/boot). Short, so that a
// host that solicits and then asks DHCP much later is not answered out
// of the blue. At most maxHeld are held; more are not answered.
const (
	holdFor = 500 * time.Millisecond
	maxHeld = 256
)

// Solicitations the initial one is retried: the interface may have no
// usable link-local address yet (a bridge whose first port comes up
// later), and sending needs one.
const (
	solicitTries    = 30
	solicitInterval = time.Second
)

// Config is what a Responder needs.
type Config struct {
	// Booting reports whether the host with this MAC is being booted
	// now; only those get an advertisement. Required. Called on the read
	// loop, so it must not wait on I/O.
	Booting func(mac net.HardwareAddr) bool
	Log     zerolog.Logger
}

// Responder answers router solicitations on one interface. Build it with
// New and run Serve once; WriteMetrics may be called at any time.
type Responder struct {
	cfg Config

	conn atomic.Pointer[Conn] // set by Serve

	mu      sync.Mutex
	routers map[netip.Addr]time.Time // other routers → when their lifetime ends
	down    bool                     // standing down, as last logged
	held    map[[6]byte]heldRS       // solicitations waiting for their host's DHCP reply

	sent, notBooting, routerPresent atomic.Uint64
}

// heldRS is a solicitation held for its host's DHCP reply.
type heldRS struct {
	src   netip.Addr
	until time.Time
}

// New returns a Responder for cfg.
func New(cfg Config) *Responder {
	return &Responder{cfg: cfg, routers: make(map[netip.Addr]time.Time), held: make(map[[6]byte]heldRS)}
}

// Serve answers on c until ctx ends (then it closes c and returns nil)
// or the socket fails.
func (r *Responder) Serve(ctx context.Context, c *Conn) error {
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	r.conn.Store(c)
	defer r.conn.Store(nil)
	go r.solicit(ctx, c)
	for {
		m, src, err := c.read()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		switch m := m.(type) {
		case *ndp.RouterAdvertisement:
			if src.IsLinkLocalUnicast() { // RFC 4861 §6.1.2
				r.heard(src, m.RouterLifetime, time.Now())
			}
		case *ndp.RouterSolicitation:
			r.solicited(c, m, src, time.Now())
		}
	}
}

// solicit sends the one solicitation of our own, retrying while the
// interface cannot send yet.
func (r *Responder) solicit(ctx context.Context, c *Conn) {
	for range solicitTries {
		err := c.solicit()
		if err == nil {
			return
		}
		r.cfg.Log.Debug().Err(err).Msg("router solicitation not sent yet")
		select {
		case <-ctx.Done():
			return
		case <-time.After(solicitInterval):
		}
	}
}

// heard notes an advertisement from src: a router while its lifetime
// is not zero (RFC 4861 §6.3.4), no longer one when it advertises 0.
func (r *Responder) heard(src netip.Addr, lifetime time.Duration, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, known := r.routers[src]
	switch {
	case lifetime == 0:
		delete(r.routers, src)
	case known || len(r.routers) < maxRouters:
		r.routers[src] = now.Add(lifetime)
	}
	if r.standingDownLocked(now) && !known && lifetime != 0 {
		r.cfg.Log.Debug().Str("router", src.String()).Dur("lifetime", lifetime).Msg("IPv6 router advertisement")
	}
}

// standingDownLocked reports whether a router other than us is alive on
// the link at now, forgetting those whose lifetime ran out, and logs
// each change once. Called with r.mu held.
func (r *Responder) standingDownLocked(now time.Time) bool {
	var router netip.Addr
	for a, until := range r.routers {
		if !now.Before(until) {
			delete(r.routers, a)
			continue
		}
		router = a
	}
	down := len(r.routers) > 0
	if down != r.down {
		r.down = down
		if down {
			r.cfg.Log.Info().Str("router", router.String()).
				Msg("an IPv6 router advertises on this link: not answering router solicitations while it does")
		} else {
			r.cfg.Log.Info().Msg("no IPv6 router advertises on this link any more: answering booting hosts' router solicitations again")
		}
	}
	return down
}

// StandingDown reports whether another router on the link is alive now.
func (r *Responder) StandingDown() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.standingDownLocked(time.Now())
}

// solicited answers rs from src if it comes from a host being booted
// and no router on the link answers it. One from a host not known as
// booting is held for holdFor: Booted answers it if its DHCP reply
// comes in that time.
func (r *Responder) solicited(c *Conn, rs *ndp.RouterSolicitation, src netip.Addr, now time.Time) {
	mac := solicitor(rs, src)
	if mac == nil {
		return // nobody to tie it to
	}
	r.mu.Lock()
	down := r.standingDownLocked(now)
	booting := !down && r.cfg.Booting(mac)
	held := !down && !booting && r.holdLocked([6]byte(mac), src, now)
	r.mu.Unlock()
	log := r.cfg.Log.Debug().Str("mac", mac.String()).Str("from", src.String())
	switch {
	case down:
		r.routerPresent.Add(1)
		log.Msg("router solicitation left to the IPv6 router on the link")
	case held:
		log.Msg("router solicitation from a host not being booted: held for its DHCP reply")
	case !booting:
		r.notBooting.Add(1)
		log.Msg("router solicitation from a host not being booted: not answered")
	default:
		r.answer(c, mac, src)
	}
}

// holdLocked holds a solicitation from mac at src until now+holdFor,
// and reports whether it did (not when maxHeld are held already).
// Called with r.mu held.
func (r *Responder) holdLocked(mac [6]byte, src netip.Addr, now time.Time) bool {
	r.sweepLocked(now)
	if _, ok := r.held[mac]; !ok && len(r.held) >= maxHeld {
		return false
	}
	r.held[mac] = heldRS{src: src, until: now.Add(holdFor)}
	return true
}

// sweepLocked forgets the held solicitations whose time ran out at now,
// counting them unanswered. Called with r.mu held.
func (r *Responder) sweepLocked(now time.Time) {
	for mac, h := range r.held {
		if now.After(h.until) {
			delete(r.held, mac)
			r.notBooting.Add(1)
		}
	}
}

// Booted tells r that mac has just been answered in DHCP: a solicitation
// it holds from mac is answered now, unless a router appeared meanwhile.
// Cheap when none is held; safe for concurrent use.
func (r *Responder) Booted(mac net.HardwareAddr) {
	if len(mac) != 6 {
		return
	}
	now := time.Now()
	r.mu.Lock()
	if len(r.held) == 0 {
		r.mu.Unlock()
		return
	}
	r.sweepLocked(now)
	h, ok := r.held[[6]byte(mac)]
	delete(r.held, [6]byte(mac))
	down := ok && r.standingDownLocked(now)
	r.mu.Unlock()
	c := r.conn.Load()
	switch {
	case !ok || c == nil:
	case down:
		r.routerPresent.Add(1)
	default:
		r.answer(c, mac, h.src)
	}
}

// answer sends mac at src the advertisement that configures nothing.
func (r *Responder) answer(c *Conn, mac net.HardwareAddr, src netip.Addr) {
	log := r.cfg.Log.Debug().Str("mac", mac.String()).Str("from", src.String())
	if err := c.advertise(src); err != nil {
		log.Err(err).Msg("router advertisement not sent")
		return
	}
	r.sent.Add(1)
	log.Msg("router advertisement sent (lifetime 0, no prefix)")
}

// solicitor is the MAC of the host that sent rs from src: its source
// link-layer address option, else the EUI-64 interface identifier of a
// link-local source (RFC 4291 appendix A); nil if neither names one. A
// solicitation from the unspecified address names nobody: it may not
// carry the option (RFC 4861 §4.1).
func solicitor(rs *ndp.RouterSolicitation, src netip.Addr) net.HardwareAddr {
	if !src.IsLinkLocalUnicast() {
		return nil
	}
	for _, o := range rs.Options {
		if l, ok := o.(*ndp.LinkLayerAddress); ok && l.Direction == ndp.Source && len(l.Addr) == 6 {
			return l.Addr
		}
	}
	b := src.As16()
	if b[11] != 0xff || b[12] != 0xfe {
		return nil
	}
	return net.HardwareAddr{b[8] ^ 0x02, b[9], b[10], b[13], b[14], b[15]}
}

// WriteMetrics adds the responder's gauge and counters to a scrape.
func (r *Responder) WriteMetrics(mw *metrics.Writer) {
	r.mu.Lock()
	r.sweepLocked(time.Now())
	r.mu.Unlock()
	down := 0.0
	if r.StandingDown() {
		down = 1
	}
	mw.Gauge("stagehand_ipv6_ra_standing_down", "1 while another IPv6 router advertises on the DHCP interface (a router lifetime not yet run out): stagehand answers no router solicitation then.", nil, down)
	mw.Counter("stagehand_ipv6_ra_sent_total", "Router advertisements (lifetime 0, no prefix) sent to booting hosts' router solicitations.", nil, float64(r.sent.Load()))
	const help = "Router solicitations not answered: from a host not being booted, or while another IPv6 router is on the link."
	mw.Counter("stagehand_ipv6_rs_unanswered_total", help, metrics.L("reason", "not_booting"), float64(r.notBooting.Load()))
	mw.Counter("stagehand_ipv6_rs_unanswered_total", help, metrics.L("reason", "router_present"), float64(r.routerPresent.Load()))
}
