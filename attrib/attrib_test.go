package attrib_test

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/attrib"
	"github.com/stagehand-dev/stagehand/neigh"
)

var t0 = time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

var ip = netip.MustParseAddr

// arpTable writes a table in /proc/net/arp's format and returns the
// serving interface's view of it, read by the real parser.
func arpTable(t *testing.T, rows string) neigh.Table {
	t.Helper()
	p := filepath.Join(t.TempDir(), "arp")
	hdr := "IP address       HW type     Flags       HW address            Mask     Device\n"
	if err := os.WriteFile(p, []byte(hdr+rows), 0o644); err != nil {
		t.Fatal(err)
	}
	return neigh.Table{Path: p, Device: "br0"}
}

const (
	macA = "52:54:00:00:00:0a"
	macB = "52:54:00:00:00:0b"
	macC = "52:54:00:00:00:0c"
)

// fixture: A holds a lease on .10 (full mode), B was overheard asking for
// .20 (proxy mode), C is in the kernel's table at .30 on the serving
// interface, and B again at .40 on another interface.
func fixture(t *testing.T) (*attrib.Index, *clock, *attrib.LeaseTable) {
	t.Helper()
	c := &clock{now: t0}
	var lt attrib.LeaseTable
	lt.Put(mac(macA), ip("10.0.0.10"), t0.Add(time.Hour))
	x := attrib.New(attrib.Config{
		Leases: &lt,
		Neighbours: arpTable(t, ""+
			"10.0.0.30        0x1         0x2         "+macC+"     *        br0\n"+
			"10.0.0.40        0x1         0x2         "+macB+"     *        eth1\n"+
			"10.0.0.50        0x1         0x0         00:00:00:00:00:00     *        br0\n"),
		TTL: time.Hour,
		Now: c.Now,
	})
	x.Observe(ip("10.0.0.20"), mac(macB), attrib.SourceDHCP)
	return x, c, &lt
}

func TestVouch(t *testing.T) {
	tests := []struct {
		name   string
		mac    string
		ip     string
		setup  func(*attrib.Index, *clock, *attrib.LeaseTable)
		want   attrib.Source
		wantOK bool
	}{
		{name: "lease", mac: macA, ip: "10.0.0.10", want: attrib.SourceLease, wantOK: true},
		{name: "lease, IPv4-mapped request address", mac: macA, ip: "::ffff:10.0.0.10", want: attrib.SourceLease, wantOK: true},
		{name: "lease names another address", mac: macA, ip: "10.0.0.11"},
		{name: "lease expired", mac: macA, ip: "10.0.0.10", setup: func(_ *attrib.Index, c *clock, _ *attrib.LeaseTable) { c.add(time.Hour) }},
		{name: "lease deleted (RELEASE)", mac: macA, ip: "10.0.0.10", setup: func(_ *attrib.Index, _ *clock, lt *attrib.LeaseTable) { lt.Delete(mac(macA)) }},
		{name: "address leased to another MAC", mac: macB, ip: "10.0.0.10"},
		{name: "overheard exchange", mac: macB, ip: "10.0.0.20", want: attrib.SourceDHCP, wantOK: true},
		{name: "overheard exchange for another MAC", mac: macA, ip: "10.0.0.20"},
		{name: "overheard exchange expired", mac: macB, ip: "10.0.0.20", setup: func(_ *attrib.Index, c *clock, _ *attrib.LeaseTable) { c.add(time.Hour + time.Second) }},
		{name: "overheard exchange still fresh at TTL", mac: macB, ip: "10.0.0.20", want: attrib.SourceDHCP, wantOK: true,
			setup: func(_ *attrib.Index, c *clock, _ *attrib.LeaseTable) { c.add(time.Hour) }},
		{name: "address moved: newest sighting wins", mac: macB, ip: "10.0.0.20",
			setup: func(x *attrib.Index, _ *clock, _ *attrib.LeaseTable) {
				x.Observe(ip("10.0.0.20"), mac(macA), attrib.SourceDHCP)
			}},
		{name: "neighbour on the serving interface", mac: macC, ip: "10.0.0.30", want: attrib.SourceNeighbour, wantOK: true},
		{name: "neighbour names another MAC", mac: macA, ip: "10.0.0.30"},
		{name: "neighbour on another interface", mac: macB, ip: "10.0.0.40"},
		{name: "neighbour incomplete", mac: macC, ip: "10.0.0.50"},
		{name: "a stale sighting of another MAC does not hide the kernel's entry", mac: macC, ip: "10.0.0.30", want: attrib.SourceNeighbour, wantOK: true,
			setup: func(x *attrib.Index, _ *clock, _ *attrib.LeaseTable) {
				x.Observe(ip("10.0.0.30"), mac(macA), attrib.SourceDHCP)
			}},
		{name: "a claim never vouches", mac: macA, ip: "10.0.0.60",
			setup: func(x *attrib.Index, _ *clock, _ *attrib.LeaseTable) {
				x.Observe(ip("10.0.0.60"), mac(macA), attrib.SourceClaim)
			}},
		{name: "lease and neighbour cannot be observed", mac: macA, ip: "10.0.0.61",
			setup: func(x *attrib.Index, _ *clock, _ *attrib.LeaseTable) {
				x.Observe(ip("10.0.0.61"), mac(macA), attrib.SourceLease)
				x.Observe(ip("10.0.0.61"), mac(macA), attrib.SourceNeighbour)
			}},
		{name: "no evidence at all", mac: macA, ip: "127.0.0.2"},
		{name: "IPv6", mac: macA, ip: "fe80::1"},
		{name: "not an Ethernet MAC", mac: "02:00:00:00:00:00:00:0a", ip: "10.0.0.10"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x, c, lt := fixture(t)
			if tc.setup != nil {
				tc.setup(x, c, lt)
			}
			got, ok := x.Vouch(mac(tc.mac), ip(tc.ip))
			if got != tc.want || ok != tc.wantOK {
				t.Fatalf("Vouch(%s, %s) = %v, %v; want %v, %v", tc.mac, tc.ip, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestMACAt(t *testing.T) {
	tests := []struct {
		name    string
		ip      string
		setup   func(*attrib.Index, *clock, *attrib.LeaseTable)
		want    string // "" = nobody
		source  attrib.Source
		noKernl bool // Remembered instead of MACAt
	}{
		{name: "lease", ip: "10.0.0.10", want: macA, source: attrib.SourceLease},
		{name: "a lease beats a sighting", ip: "10.0.0.10", want: macA, source: attrib.SourceLease,
			setup: func(x *attrib.Index, _ *clock, _ *attrib.LeaseTable) {
				x.Observe(ip("10.0.0.10"), mac(macB), attrib.SourceDHCP)
			}},
		{name: "expired lease yields to a sighting", ip: "10.0.0.10", want: macB, source: attrib.SourceDHCP,
			setup: func(x *attrib.Index, c *clock, _ *attrib.LeaseTable) {
				c.add(time.Hour)
				x.Observe(ip("10.0.0.10"), mac(macB), attrib.SourceDHCP)
			}},
		{name: "overheard exchange", ip: "10.0.0.20", want: macB, source: attrib.SourceDHCP},
		{name: "a sighting beats the kernel", ip: "10.0.0.30", want: macA, source: attrib.SourceDHCP,
			setup: func(x *attrib.Index, _ *clock, _ *attrib.LeaseTable) {
				x.Observe(ip("10.0.0.30"), mac(macA), attrib.SourceDHCP)
			}},
		{name: "kernel", ip: "10.0.0.30", want: macC, source: attrib.SourceNeighbour},
		{name: "kernel beats a claim", ip: "10.0.0.30", want: macC, source: attrib.SourceNeighbour,
			setup: func(x *attrib.Index, _ *clock, _ *attrib.LeaseTable) {
				x.Observe(ip("10.0.0.30"), mac(macA), attrib.SourceClaim)
			}},
		{name: "Remembered skips the kernel", ip: "10.0.0.30", noKernl: true},
		{name: "Remembered: a claim", ip: "10.0.0.30", want: macA, source: attrib.SourceClaim, noKernl: true,
			setup: func(x *attrib.Index, _ *clock, _ *attrib.LeaseTable) {
				x.Observe(ip("10.0.0.30"), mac(macA), attrib.SourceClaim)
			}},
		{name: "kernel entry on another interface", ip: "10.0.0.40"},
		{name: "claim", ip: "10.0.0.60", want: macA, source: attrib.SourceClaim,
			setup: func(x *attrib.Index, _ *clock, _ *attrib.LeaseTable) {
				x.Observe(ip("10.0.0.60"), mac(macA), attrib.SourceClaim)
			}},
		{name: "expired claim", ip: "10.0.0.60",
			setup: func(x *attrib.Index, c *clock, _ *attrib.LeaseTable) {
				x.Observe(ip("10.0.0.60"), mac(macA), attrib.SourceClaim)
				c.add(2 * time.Hour)
			}},
		{name: "lease moved to another address", ip: "10.0.0.10", want: "",
			setup: func(_ *attrib.Index, _ *clock, lt *attrib.LeaseTable) {
				lt.Put(mac(macA), ip("10.0.0.11"), t0.Add(time.Hour))
			}},
		{name: "address re-leased to another MAC", ip: "10.0.0.10", want: macC, source: attrib.SourceLease,
			setup: func(_ *attrib.Index, _ *clock, lt *attrib.LeaseTable) {
				lt.Put(mac(macC), ip("10.0.0.10"), t0.Add(time.Hour))
			}},
		{name: "nobody", ip: "10.0.0.99"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x, c, lt := fixture(t)
			if tc.setup != nil {
				tc.setup(x, c, lt)
			}
			at := x.MACAt
			if tc.noKernl {
				at = x.Remembered
			}
			got, src, ok := at(ip(tc.ip))
			if tc.want == "" {
				if ok {
					t.Fatalf("%s: found %s (%v), want nobody", tc.ip, got, src)
				}
				return
			}
			if !ok || got.String() != tc.want || src != tc.source {
				t.Fatalf("%s: %s (%v, found %v), want %s (%v)", tc.ip, got, src, ok, tc.want, tc.source)
			}
		})
	}
}

// TestBound: past Max addresses the oldest are forgotten first, and a
// flood of strangers never grows the index beyond Max.
func TestBound(t *testing.T) {
	x := attrib.New(attrib.Config{Max: 4})
	first := mac(macA)
	x.Observe(ip("10.0.0.1"), first, attrib.SourceDHCP)
	for i := 2; i <= 1000; i++ {
		x.Observe(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), mac(macB), attrib.SourceDHCP)
		if x.Len() > 4 {
			t.Fatalf("after %d addresses: %d remembered, bound 4", i, x.Len())
		}
	}
	if _, _, ok := x.MACAt(ip("10.0.0.1")); ok {
		t.Fatal("the oldest address survived a flood")
	}
	if got, _, ok := x.MACAt(netip.AddrFrom4([4]byte{10, 1, 3, 232})); !ok || got.String() != macB {
		t.Fatalf("the newest address: %v %v", got, ok)
	}
	// A second sighting of a remembered address takes no extra room.
	x.Observe(netip.AddrFrom4([4]byte{10, 1, 3, 232}), first, attrib.SourceClaim)
	if x.Len() != 4 {
		t.Fatalf("re-observing: %d remembered, want 4", x.Len())
	}
}

func TestSourceString(t *testing.T) {
	want := map[attrib.Source]string{attrib.SourceNone: "none", attrib.SourceLease: "lease", attrib.SourceDHCP: "dhcp",
		attrib.SourceNeighbour: "neighbour", attrib.SourceClaim: "claim"}
	for s, w := range want {
		if s.String() != w {
			t.Errorf("%d.String() = %q, want %q", s, s.String(), w)
		}
	}
}

// TestConcurrent runs observations and lookups at once, for -race.
func TestConcurrent(t *testing.T) {
	var lt attrib.LeaseTable
	x := attrib.New(attrib.Config{Leases: &lt, Max: 64})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				a := netip.AddrFrom4([4]byte{10, 2, byte(g), byte(i)})
				m := net.HardwareAddr{2, 0, 0, 0, byte(g), byte(i)}
				x.Observe(a, m, attrib.SourceDHCP)
				lt.Put(m, a, time.Now().Add(time.Hour))
				x.Vouch(m, a)
				x.MACAt(a)
				lt.Delete(m)
			}
		}()
	}
	wg.Wait()
	if x.Len() > 64 {
		t.Fatalf("%d remembered, bound 64", x.Len())
	}
}
