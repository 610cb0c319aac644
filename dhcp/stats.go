package dhcp

import (
	"sync/atomic"

	"github.com/stagehand-dev/stagehand/ipxe"
)

// Stats is a snapshot of a Server's counters since NewServer.
type Stats struct {
	Received uint64 // packets read from all sockets
	Offers   uint64
	Acks     uint64
	Naks     uint64
	// ByArch counts replies by the client's architecture; clients that
	// got no boot options (full mode) count under ipxe.ArchUnknown.
	ByArch map[ipxe.Arch]uint64

	// Dropped packets, by reason.
	Malformed   uint64 // larger than 1500 bytes, unparseable, or unanswerable (BOOTP, not Ethernet)
	NonPXE      uint64 // proxy mode: not a network-boot client
	UnknownArch uint64 // network-boot client of an unsupported architecture (ARM64 without ARM64File included)
	Ignored     uint64 // refused by Policy, message type not served on this socket, for another server
	Overload    uint64 // the worker queue was full
	// RelayRefused counts relayed requests (giaddr set) from a relay not
	// trusted (see Config.TrustedRelays: answering would send the reply
	// where the sender chose) and, in full mode, for a subnet (giaddr's
	// or link selection's) that no range serves.
	RelayRefused uint64

	// Full mode.
	Releases uint64
	Declines uint64
	// ReleasesRefused counts RELEASEs not sent the way RFC 2131 §4.4.4
	// has the client send them (unicast from the address it releases,
	// not relayed) or for an address the client does not hold.
	ReleasesRefused uint64
	// DeclinesRefused counts DECLINEs not for the address this server
	// offered the client, or ACKed it in the last declineWindow: a client
	// declines what it has just been given (§4.4.1), not a lease of old.
	DeclinesRefused uint64
	// DeclinesCapped counts DECLINEs refused because the client's MAC
	// already holds maxDeclinesPerMAC addresses in quarantine.
	DeclinesCapped uint64
	PoolExhausted  uint64 // DISCOVERs left unanswered for want of an address
	// UnknownCapped counts DISCOVERs of unknown clients left unanswered
	// because unknown clients hold their share of the range
	// (Config.UnknownShare) while addresses remain for known hosts.
	UnknownCapped uint64
	// ReservationsBlocked counts requests of hosts whose reserved address
	// could not be given (held by another client's live lease, or
	// outside the subnet); they were served from the pool instead.
	ReservationsBlocked uint64
	StoreErrors         uint64 // PutLease failures (the client got no ACK)
	SendErrors          uint64

	// HooksDropped counts replies sent but not reported to OnReplies
	// because it fell behind (see Config.OnReplies).
	HooksDropped uint64
}

// archSlots indexes the per-architecture counters; the last is "other".
var archSlots = [...]ipxe.Arch{
	ipxe.ArchBIOS, ipxe.ArchEFIIA32, ipxe.ArchEFI64, ipxe.ArchEFIBC,
	ipxe.ArchARM64, ipxe.ArchEFI64HTTP, ipxe.ArchUnknown,
}

type counters struct {
	received, offers, acks, naks            atomic.Uint64
	malformed, nonPXE, unknownArch, ignored atomic.Uint64
	overload, releases, declines, exhausted atomic.Uint64
	storeErrors, sendErrors, hooksDropped   atomic.Uint64
	unknownCapped, resBlocked               atomic.Uint64
	relayRefused, releasesRefused           atomic.Uint64
	declinesRefused, declinesCapped         atomic.Uint64
	arch                                    [len(archSlots)]atomic.Uint64
}

func (c *counters) countArch(a ipxe.Arch, boot bool) {
	if boot {
		for i, s := range archSlots[:len(archSlots)-1] {
			if s == a {
				c.arch[i].Add(1)
				return
			}
		}
	}
	c.arch[len(archSlots)-1].Add(1)
}

// Stats returns a snapshot of the counters. Safe for concurrent use.
func (s *Server) Stats() Stats {
	c := &s.stats
	st := Stats{
		Received: c.received.Load(), Offers: c.offers.Load(), Acks: c.acks.Load(), Naks: c.naks.Load(),
		Malformed: c.malformed.Load(), NonPXE: c.nonPXE.Load(), UnknownArch: c.unknownArch.Load(),
		Ignored: c.ignored.Load(), Overload: c.overload.Load(),
		Releases: c.releases.Load(), Declines: c.declines.Load(), PoolExhausted: c.exhausted.Load(),
		StoreErrors: c.storeErrors.Load(), SendErrors: c.sendErrors.Load(), HooksDropped: c.hooksDropped.Load(),
		UnknownCapped: c.unknownCapped.Load(), ReservationsBlocked: c.resBlocked.Load(),
		RelayRefused: c.relayRefused.Load(), ReleasesRefused: c.releasesRefused.Load(),
		DeclinesRefused: c.declinesRefused.Load(), DeclinesCapped: c.declinesCapped.Load(),
		ByArch: make(map[ipxe.Arch]uint64, len(archSlots)),
	}
	for i, a := range archSlots {
		if n := c.arch[i].Load(); n > 0 {
			st.ByArch[a] = n
		}
	}
	return st
}
