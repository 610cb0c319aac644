package server

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/stagehand-dev/stagehand/dhcp"
)

// Which DHCP replies become host events. Firmware retransmits, iPXE and
// the installer ask again, and anyone can send DISCOVERs with a host's
// MAC (it is in every broadcast the host sends): an event per reply let
// a stranger push a host's history out of its window (250 DISCOVERs in
// under a second evicted its `created` event). An event is written when
// something changes for the MAC: a new exchange, a new address or a new
// boot file.
const (
	// dhcpEventGap: a reply this long after the MAC's previous one starts
	// a new exchange (a reboot, a renewal at T1), whatever its xid.
	dhcpEventGap = 5 * time.Minute
	// dhcpEventBudget events per MAC per dhcpEventWindow at most: a boot
	// writes about six (firmware, iPXE and installer each get an OFFER
	// and an ACK); a flood that changes something in every reply
	// (alternating vendor classes, new exchanges back to back) is cut
	// off there and counted.
	dhcpEventBudget = 12
	dhcpEventWindow = 10 * time.Minute
	// dhcpEventMACs bounds the MACs remembered, as attrib.DefaultMax
	// does: a flood of random MACs evicts the oldest, which costs those
	// hosts one extra event at their next reply.
	dhcpEventMACs = 16384
)

// dhcpJournal decides which replies are recorded. Safe for concurrent
// use (one OnReplies goroutine per DHCP socket); no I/O.
type dhcpJournal struct {
	mu    sync.Mutex
	macs  map[[6]byte]*dhcpSeen
	order [][6]byte // insertion order of macs, for its bound
	// suppressed counts changes not recorded for want of budget.
	suppressed atomic.Uint64
}

// dhcpSeen is what the journal knows of one MAC.
type dhcpSeen struct {
	// The last reply seen: its exchange and whether it ended it (an ACK
	// or NAK).
	xid  dhcpv4.TransactionID
	typ  dhcpv4.MessageType
	at   time.Time
	done bool
	// The last reply recorded.
	ip   netip.Addr
	file string
	// Events recorded since window began.
	n      int
	window time.Time
}

func newDHCPJournal() *dhcpJournal {
	return &dhcpJournal{macs: make(map[[6]byte]*dhcpSeen)}
}

// record reports whether r, sent at now, is to be written as an event.
func (j *dhcpJournal) record(r *dhcp.Reply, now time.Time) bool {
	if len(r.Client.MAC) != 6 {
		return true
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	e := j.entry([6]byte(r.Client.MAC))
	fresh := e.at.IsZero() || now.Sub(e.at) > dhcpEventGap
	changed := fresh ||
		(r.Client.XID != e.xid && e.done) || // a new exchange after one ended
		(r.Client.XID == e.xid && r.Type != e.typ) || // the exchange moved on: OFFER → ACK or NAK
		r.IP != e.ip || r.BootFile != e.file
	e.xid, e.typ, e.at = r.Client.XID, r.Type, now
	e.done = r.Type == dhcpv4.MessageTypeAck || r.Type == dhcpv4.MessageTypeNak
	if !changed {
		return false
	}
	if fresh || now.Sub(e.window) > dhcpEventWindow {
		e.n, e.window = 0, now
	}
	if e.n >= dhcpEventBudget {
		j.suppressed.Add(1)
		return false
	}
	e.n++
	e.ip, e.file = r.IP, r.BootFile
	return true
}

// repliedWithin reports whether a reply went to mac in the span before
// now: a host being booted. The ra package's responder asks it.
func (j *dhcpJournal) repliedWithin(mac net.HardwareAddr, span time.Duration, now time.Time) bool {
	if len(mac) != 6 {
		return false
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	e, ok := j.macs[[6]byte(mac)]
	return ok && now.Sub(e.at) <= span
}

// entry returns mac's record, making room for it. Called with j.mu held.
func (j *dhcpJournal) entry(mac [6]byte) *dhcpSeen {
	if e, ok := j.macs[mac]; ok {
		return e
	}
	for len(j.order) >= dhcpEventMACs {
		delete(j.macs, j.order[0])
		j.order = j.order[1:]
	}
	e := &dhcpSeen{}
	j.macs[mac] = e
	j.order = append(j.order, mac)
	return e
}
