package tftp

import "time"

// DefaultMaxIdle is how long a transfer may go without progress before it
// is abandoned. Boot clients wait out tens of seconds of silence (tftp-hpa's
// client gives up after 25 s by default), and at 20 % loss each way a lock-step transfer
// regularly loses an ACK several times in a row, so the abandon must be
// measured in time without progress, not in retransmissions of one packet.
const DefaultMaxIdle = 30 * time.Second

// rrqGap is the least time between two OACKs sent in answer to the same
// client's repeated RRQ. A client repeats its request after its own timer
// (a second or more, RFC 2349's smallest timeout); a copy arriving sooner
// was duplicated by the network, and answering it would send the OACK
// twice, which atftp treats as fatal (see oackResend).
const rrqGap = 500 * time.Millisecond

// maxBackoff caps the retransmission interval once it backs off. It is
// longer than the common clients' own timers (5 s for atftp and tftp-hpa)
// on purpose: atftp 0.8 answers a repeated DATA with one extra ACK and
// then ignores further copies ("got wrong block, ignoring"), resending its
// ACK only when its own timer expires, which a server resending every
// second keeps from ever happening. If that one extra ACK is lost too,
// only a gap in our resends longer than atftp's timer breaks the
// livelock (seen at 5 % loss: 27 ignored copies of one block, then the
// transfer abandoned).
const maxBackoff = 8 * time.Second

// fastRetries is how many resends go out at the negotiated timeout before
// the interval starts doubling: most losses are single, and clients that
// answer every copy (tftp-hpa, curl, iPXE) recover at full speed.
const fastRetries = 2

// retryPolicy decides, each time a transfer's retransmission timer expires,
// whether to go on. The timer itself is the negotiated timeout.
type retryPolicy struct {
	timeout    time.Duration // per-packet timer: Server.Timeout or RFC 2349's
	minRetries int           // Server.Retries: resends always tried first
	maxIdle    time.Duration // Server.MaxIdle
}

// wait is how long to wait for an ACK after the tries-th retransmission
// of the same packet (0: its first transmission): the negotiated timeout
// for the first fastRetries resends, then doubling, up to maxBackoff or
// the timeout if that is longer. RFC 1123 section 4.2.3.2 asks TFTP for an
// adaptive timeout; this is the usual exponential backoff on top of the
// RFC 2349 value.
func (p retryPolicy) wait(tries int) time.Duration {
	d := p.timeout
	for i := fastRetries; i < tries && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, max(p.timeout, maxBackoff))
}

// giveUp reports whether a transfer whose timer just expired for the
// tries-th time since the client last made progress, idle ago, should be
// abandoned: only once the packet was resent minRetries times and maxIdle
// has passed. Progress (a new ACK) resets both, so a slow but live client
// on a lossy link is not cut off; a dead one is abandoned at the first
// expiry at which both bounds are met. Expiries are at most
// max(timeout, maxBackoff) apart, so that is after at most
// max(maxIdle, (minRetries+1)×timeout) + max(timeout, maxBackoff) of
// silence: 33 s with the defaults (resends at 1, 2, 3, 5, 9, 17, 25 and
// 33 s); a client asking for RFC 2349's largest timeout, 255 s, is given
// six of them, as before this policy. Memory stays bounded because the transfer holds one packet
// buffer and one read-ahead whatever the wait, and MaxTransfers bounds how
// many wait at once.
func (p retryPolicy) giveUp(idle time.Duration, tries int) bool {
	return tries > p.minRetries && idle >= p.maxIdle
}

// oackResend reports whether the server should resend its OACK on its own
// timer, the OACK having last gone out since ago and no ACK 0 arrived.
//
// The OACK is the one packet a server should not resend early: atftp
// (0.8, tftp_file.c: "Normally we shouldn't receive more than one OACK in
// non-multicast mode") answers a second OACK with ERROR and exits, so a
// lost ACK 0 followed by our retransmitted OACK kills the transfer. Every
// client we serve retransmits on its own timer instead: its RRQ when the
// OACK was lost (answered by the read loop, once per rrqGap) or its ACK 0
// when that was lost (RFC 1350 section 2: the side that sees nothing
// resends its last packet). So the server's own resend is only a backstop
// for a client that never retransmits, after half the idle budget, when a
// retransmitting client has long had its turn.
func (p retryPolicy) oackResend(since time.Duration) bool {
	return since >= max(p.maxIdle/2, p.timeout)
}

// answerRRQ reports whether a repeated RRQ arriving since after the last
// OACK is the client's own retransmission, to be answered with the OACK.
func answerRRQ(since time.Duration) bool {
	return since >= rrqGap
}

// rrqAction is what the read loop does with an RRQ from a client address
// and port that already has a transfer running.
type rrqAction int

const (
	// rrqRepeat: the client has not heard from the transfer yet and asks
	// the same again; the transfer resends its OACK if one is due
	// (answerRRQ).
	rrqRepeat rrqAction = iota
	// rrqCopy: a copy of the request being served, duplicated by the
	// network and read by us after the client had already answered the
	// transfer; dropped.
	rrqCopy
	// rrqNew: a new request from the same port; a new transfer.
	rrqNew
)

// classifyRRQ decides for an RRQ from the port of a running transfer that
// has heard from the client (heard), whose client ended it with an ERROR
// (clientEnded), that is byte-identical to the request being served
// (same), the transfer having last heard from the client sinceHeard ago.
//
// A client retransmits its request unchanged, so a different one is a
// new request whatever the transfer has heard: a PXE ROM that asked for
// tsize alone, sent ERROR, and asks for the file (its ERROR may not have
// been read yet). Once the client has answered us it has locked onto our
// TID, and the same RRQ again from that port usually is a new request
// too: the client gave up on a stalled transfer (silent for its own
// timer, a second or more) or ended it with ERROR, and starts over. But a
// copy the network made of the first RRQ arrives at once, and when the
// read loop is behind (a loaded server) the transfer may already have
// heard the client's ACK when the copy is read: the same bytes while the
// client is still answering within rrqGap is that copy.
//
// Left as it is: the same RRQ sent right after an ERROR, read before the
// transfer reads that ERROR, counts as a repeat, and the client is
// answered when it asks again after its timer.
func classifyRRQ(heard, clientEnded, same bool, sinceHeard time.Duration) rrqAction {
	switch {
	case !same:
		return rrqNew
	case !heard:
		return rrqRepeat
	case clientEnded:
		return rrqNew
	case sinceHeard < rrqGap:
		return rrqCopy
	default:
		return rrqNew
	}
}
