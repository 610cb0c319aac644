package server

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/stagehand-dev/stagehand/dhcp"
)

func reply(mac net.HardwareAddr, xid byte, typ dhcpv4.MessageType, ip, file string) *dhcp.Reply {
	r := &dhcp.Reply{Client: dhcp.Client{MAC: mac, XID: dhcpv4.TransactionID{0, 0, 0, xid}}, Type: typ, BootFile: file}
	if ip != "" {
		r.IP = netip.MustParseAddr(ip)
	}
	return r
}

// A boot writes one event per step (firmware, iPXE, installer: OFFER and
// ACK each); retransmissions, forged DISCOVERs and renewals within the
// gap write none; a renewal after the gap writes one; a flood that
// changes something every time (here the boot file; as well new
// exchanges back to back) is cut at the budget and counted.
func TestDHCPJournal(t *testing.T) {
	j := newDHCPJournal()
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	offer, ack := dhcpv4.MessageTypeOffer, dhcpv4.MessageTypeAck
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	count := func(rs ...*dhcp.Reply) (n int) {
		for _, r := range rs {
			now = now.Add(100 * time.Millisecond)
			if j.record(r, now) {
				n++
			}
		}
		return n
	}
	boot := []*dhcp.Reply{
		reply(mac, 1, offer, "10.0.0.5", "undionly.kpxe"),
		reply(mac, 1, offer, "10.0.0.5", "undionly.kpxe"), // retransmitted DISCOVER
		reply(mac, 1, ack, "10.0.0.5", "undionly.kpxe"),
		reply(mac, 1, ack, "10.0.0.5", "undionly.kpxe"), // retransmitted REQUEST
		reply(mac, 2, offer, "10.0.0.5", "http://x/boot.ipxe"),
		reply(mac, 2, ack, "10.0.0.5", "http://x/boot.ipxe"),
		reply(mac, 3, offer, "10.0.0.5", ""),
		reply(mac, 3, ack, "10.0.0.5", ""),
	}
	if n := count(boot...); n != 6 {
		t.Fatalf("a boot wrote %d events, want 6", n)
	}
	var flood []*dhcp.Reply
	for i := range 250 {
		flood = append(flood, reply(mac, byte(10+i), offer, "10.0.0.5", ""))
	}
	if n := count(flood...); n != 1 {
		t.Fatalf("250 forged DISCOVERs wrote %d events, want 1 (the first: a new exchange after an ACK)", n)
	}
	now = now.Add(dhcpEventGap + time.Second)
	if n := count(reply(mac, 20, ack, "10.0.0.5", ""), reply(mac, 20, ack, "10.0.0.5", "")); n != 1 {
		t.Fatalf("a renewal after the gap wrote %d events, want 1", n)
	}
	flood = flood[:0]
	for i := range 100 {
		file := "undionly.kpxe"
		if i%2 == 0 {
			file = ""
		}
		flood = append(flood, reply(mac, 30, offer, "10.0.0.5", file))
	}
	// The renewal opened a window with one event: 11 left.
	// Of the 89 after those, every other one differs from the last
	// recorded and is suppressed.
	if n := count(flood...); n != dhcpEventBudget-1 || j.suppressed.Load() != 45 {
		t.Fatalf("alternating boot files: %d events, %d suppressed; want %d, 45", n, j.suppressed.Load(), dhcpEventBudget-1)
	}
	now = now.Add(dhcpEventWindow)
	if n := count(reply(mac, 30, offer, "10.0.0.6", "")); n != 1 {
		t.Fatalf("a new address after the window: %d events, want 1", n)
	}
	for i := range dhcpEventMACs + 100 {
		j.record(reply(net.HardwareAddr{2, 1, 0, byte(i >> 16), byte(i >> 8), byte(i)}, 1, offer, "10.0.0.9", ""), now)
	}
	if len(j.macs) != dhcpEventMACs || len(j.order) != dhcpEventMACs {
		t.Fatalf("remembered %d MACs (%d in order), want at most %d", len(j.macs), len(j.order), dhcpEventMACs)
	}
}

// A host is being booted (its router solicitations answered) for
// bootingSpan after each DHCP reply to it, whether or not the reply
// wrote an event; never a MAC that got none.
func TestDHCPJournalRepliedWithin(t *testing.T) {
	j := newDHCPJournal()
	host, other := net.HardwareAddr{2, 0, 0, 0, 0, 1}, net.HardwareAddr{2, 0, 0, 0, 0, 2}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	j.record(reply(host, 1, dhcpv4.MessageTypeOffer, "", "undionly.kpxe"), t0)
	later := t0.Add(4 * time.Minute)
	j.record(reply(host, 1, dhcpv4.MessageTypeOffer, "", "undionly.kpxe"), later) // a retransmission: no event
	for _, c := range []struct {
		mac  net.HardwareAddr
		at   time.Time
		want bool
	}{
		{host, t0, true},
		{host, later.Add(bootingSpan), true},
		{host, later.Add(bootingSpan + time.Second), false},
		{other, t0, false},
		{net.HardwareAddr{2, 0, 0, 0, 0, 1, 0, 0}, t0, false}, // not Ethernet
	} {
		if got := j.repliedWithin(c.mac, bootingSpan, c.at); got != c.want {
			t.Errorf("%v at +%v: %v, want %v", c.mac, c.at.Sub(t0), got, c.want)
		}
	}
}
