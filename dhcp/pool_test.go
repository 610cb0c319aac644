package dhcp

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

func mac(b byte) net.HardwareAddr { return net.HardwareAddr{2, 0, 0, 0, 0, b} }

func TestPoolLifecycle(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	start, end := netip.MustParseAddr("10.0.0.10"), netip.MustParseAddr("10.0.0.11")
	p := poolOf(start, end)

	a1, ok := p.offer(mac(1), netip.Addr{}, t0)
	if !ok {
		t.Fatal("no offer from an empty pool")
	}
	if again, _ := p.offer(mac(1), netip.Addr{}, t0.Add(time.Second)); again != a1 {
		t.Errorf("repeat DISCOVER got %v, want %v", again, a1)
	}
	a2, ok := p.offer(mac(2), a1, t0) // asks for mac(1)'s address
	if !ok || a2 == a1 {
		t.Fatalf("second client got %v, %v", a2, ok)
	}
	if _, ok := p.offer(mac(3), netip.Addr{}, t0); ok {
		t.Fatal("offer from a pool held by two offers")
	}
	// Offers lapse after offerHold.
	a3, ok := p.offer(mac(3), netip.Addr{}, t0.Add(offerHold+time.Second))
	if !ok {
		t.Fatal("lapsed offers not reusable")
	}
	if p.check(mac(1), a3, t0.Add(offerHold+time.Second)) && a3 == a1 {
		t.Error("mac(1) still holds an address given to mac(3)")
	}

	// A lease outlives its offer; once expired it stays with its client
	// until another one needs the address.
	t1 := t0.Add(time.Hour)
	p = poolOf(start, end)
	b1, _ := p.offer(mac(1), netip.Addr{}, t1)
	if !p.check(mac(1), b1, t1) {
		t.Fatal("check refused the offered address")
	}
	p.bind(mac(1), b1, t1.Add(time.Hour), "n1", t1)
	b2, _ := p.offer(mac(2), netip.Addr{}, t1)
	p.bind(mac(2), b2, t1.Add(time.Hour), "n2", t1)
	if _, ok := p.offer(mac(3), netip.Addr{}, t1.Add(30*time.Minute)); ok {
		t.Fatal("offered an address under a live lease")
	}
	t2 := t1.Add(2 * time.Hour)
	if got, _ := p.offer(mac(1), netip.Addr{}, t2); got != b1 {
		t.Errorf("expired lease's client got %v, want its old %v", got, b1)
	}
	got, ok := p.offer(mac(3), netip.Addr{}, t2)
	if !ok || got != b2 {
		t.Errorf("reclaim got %v, %v; want mac(2)'s expired %v", got, ok, b2)
	}
	if p.check(mac(2), b2, t2) {
		t.Errorf("mac(2) still holds its reclaimed address %v (mac(1) %v)", b2, b1)
	}

	// DECLINE quarantines; RELEASE frees at once.
	p = poolOf(start, end)
	c1, _ := p.offer(mac(1), netip.Addr{}, t0)
	if p.decline(mac(1), c1, t0) != declineOK {
		t.Fatal("decline refused")
	}
	c2, _ := p.offer(mac(1), netip.Addr{}, t0)
	if c2 == c1 {
		t.Error("declined address offered again at once")
	}
	p.bind(mac(1), c2, t0.Add(24*time.Hour), "", t0)
	if _, ok := p.offer(mac(2), netip.Addr{}, t0); ok {
		t.Error("declined address offered to another client")
	}
	if got, ok := p.offer(mac(2), netip.Addr{}, t0.Add(declineHold+time.Second)); !ok || got != c1 {
		t.Errorf("after quarantine got %v, %v; want %v", got, ok, c1)
	}
	if p.release(mac(9), c2) {
		t.Error("released another client's address")
	}
	if !p.release(mac(1), c2) {
		t.Error("release refused")
	}
	if got, ok := p.offer(mac(3), netip.Addr{}, t0); !ok || got != c2 {
		t.Errorf("released address: got %v, %v", got, ok)
	}
}

func TestPoolLoad(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := poolOf(netip.MustParseAddr("10.0.0.10"), netip.MustParseAddr("10.0.0.20"))
	a := netip.MustParseAddr("10.0.0.12")
	n := p.load([]Lease{
		{MAC: mac(1), IP: a, Expiry: t0},
		{MAC: mac(2), IP: a, Expiry: t0.Add(time.Hour)},                 // reclaimed later: wins
		{MAC: mac(3), IP: netip.MustParseAddr("10.0.0.99"), Expiry: t0}, // outside the range
		{MAC: mac(4), IP: netip.MustParseAddr("10.0.0.13"), Expiry: t0.Add(-time.Hour)},
	}, nil, nil)
	if n != 3 {
		t.Errorf("loaded %d", n)
	}
	if !p.check(mac(2), a, t0) || p.check(mac(1), a, t0) {
		t.Error("the later lease on a shared address did not win")
	}
	if got, _ := p.offer(mac(4), netip.Addr{}, t0); got != netip.MustParseAddr("10.0.0.13") {
		t.Errorf("expired stored lease not given back to its client: %v", got)
	}
}

// claim: who may take a reserved address from whom.
func TestPoolClaim(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := netip.MustParseAddr("10.0.0.10")
	for _, tt := range []struct {
		name  string
		setup func(p *pool)
		want  bool
	}{
		{"free", func(*pool) {}, true},
		{"outside the range", nil, true},
		{"its own lease", func(p *pool) { p.bind(mac(1), a, t0.Add(time.Hour), "", t0) }, true},
		{"another client's offer", func(p *pool) { p.offer(mac(2), a, t0) }, true},
		{"another client's expired lease", func(p *pool) { p.bind(mac(2), a, t0.Add(-time.Second), "", t0) }, true},
		{"another client's live lease", func(p *pool) { p.bind(mac(2), a, t0.Add(time.Hour), "", t0) }, false},
	} {
		p := poolOf(a, netip.MustParseAddr("10.0.0.11"))
		want := a
		if tt.setup == nil {
			want = netip.MustParseAddr("10.0.0.50")
		} else {
			tt.setup(p)
		}
		if got := p.claim(mac(1), want, t0); got != tt.want {
			t.Errorf("%s: claim = %v, want %v", tt.name, got, tt.want)
		}
		if tt.want && tt.setup != nil && !p.check(mac(1), a, t0) {
			t.Errorf("%s: claimed address not held by the claimant", tt.name)
		}
	}
}

// Unknown clients hold at most their share; a lapsed unknown offer is
// reclaimed by the next unknown client without growing the share; known
// clients get the rest.
func TestPoolUnknownShare(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := poolOf(netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.10"))
	p.limitUnknown(30) // 3 of 10
	stranger := func(b byte, now time.Time) offerResult {
		_, r := p.offerTo(ask{mac: mac(b), unknown: true}, now)
		return r
	}
	for b := byte(1); b <= 3; b++ {
		if r := stranger(b, t0); r != offerOK {
			t.Fatalf("stranger %d: %v", b, r)
		}
	}
	if r := stranger(4, t0); r != offerUnknownCapped {
		t.Fatalf("fourth stranger: %v, want capped", r)
	}
	if r := stranger(1, t0); r != offerOK {
		t.Errorf("a stranger repeating its DISCOVER keeps its offer: %v", r)
	}
	for b := byte(10); b < 17; b++ {
		if _, r := p.offerTo(ask{mac: mac(b)}, t0); r != offerOK {
			t.Fatalf("known %d: %v", b, r)
		}
	}
	if _, r := p.offerTo(ask{mac: mac(17)}, t0); r != offerExhausted {
		t.Errorf("known client on a full pool: %v", r)
	}
	// The strangers' offers lapse; the next stranger reclaims one of them.
	later := t0.Add(offerHold + time.Second)
	if r := stranger(4, later); r != offerOK || p.unknownHeld != 3 {
		t.Errorf("stranger after the lapse: %v, held %d", r, p.unknownHeld)
	}
	// A bind keeps the count (the offer becomes a lease), a release
	// lowers it.
	a, _ := p.offerTo(ask{mac: mac(5), unknown: true}, later)
	p.bindAs(mac(5), a, later.Add(time.Hour), "", true, later)
	if p.unknownHeld != 3 {
		t.Errorf("held %d after bind, want 3", p.unknownHeld)
	}
	p.release(mac(5), a)
	if p.unknownHeld != 2 {
		t.Errorf("held %d after release, want 2", p.unknownHeld)
	}
}

// A DECLINE is taken for a pending offer or a lease ACKed within
// declineWindow, not for a lapsed offer or an older lease; a MAC holds
// at most maxDeclinesPerMAC live quarantines.
func TestPoolDeclineWindow(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := poolOf(netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.10"))
	a, _ := p.offer(mac(1), netip.Addr{}, t0)
	if r := p.decline(mac(1), a, t0.Add(offerHold+time.Second)); r != declineNotHeld {
		t.Errorf("lapsed offer: %v", r)
	}
	a, _ = p.offer(mac(1), netip.Addr{}, t0)
	p.bind(mac(1), a, t0.Add(time.Hour), "", t0)
	if r := p.decline(mac(1), a, t0.Add(declineWindow+time.Second)); r != declineNotHeld {
		t.Errorf("lease ACKed before the window: %v", r)
	}
	if r := p.decline(mac(1), a, t0.Add(declineWindow)); r != declineOK {
		t.Errorf("lease ACKed within the window: %v", r)
	}
	b, _ := p.offer(mac(1), netip.Addr{}, t0)
	if r := p.decline(mac(1), b, t0); r != declineOK {
		t.Errorf("second: %v", r)
	}
	c, _ := p.offer(mac(1), netip.Addr{}, t0)
	if r := p.decline(mac(1), c, t0); r != declineCapped {
		t.Errorf("third: %v, want capped", r)
	}
	t1 := t0.Add(declineHold + time.Second)
	c, _ = p.offer(mac(1), netip.Addr{}, t1)
	if r := p.decline(mac(1), c, t1); r != declineOK || len(p.declined[keyOf(mac(1))]) != 3 {
		t.Errorf("after the first two lapsed: %v, listed %v", r, p.declined[keyOf(mac(1))])
	}
	// Reusing a lapsed quarantine (b's) takes it off the MAC's list; a's
	// (declined at the window's end) and c's are live.
	for b := byte(2); b < 11; b++ { // the nine usable slots
		p.offer(mac(b), netip.Addr{}, t1)
	}
	if n := len(p.declined[keyOf(mac(1))]); n != 2 {
		t.Errorf("%d quarantines listed after reuse, want 2", n)
	}
}

// poolOf is the pool of the one range start-end.
func poolOf(start, end netip.Addr) *pool { return newPool([]Range{{Start: start, End: end}}) }
