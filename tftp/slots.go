package tftp

import (
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/stagehand-dev/stagehand/internal/throttle"
)

// answerGrace is how long after its OACK or DATA 1 went out a transfer
// whose client has not answered yet is safe from being displaced by a
// newer request. Displacing a client that did get our packet is fatal to
// its boot: it has locked onto the transfer's port and only ever resends
// its answer there. Firmware on a LAN answers within milliseconds, but a
// boot storm larger than MaxPending fills the pending slots with genuine
// clients, and a relayed site or a loaded client (faults'
// TestConcurrentTFTPTransfers under -race: 137 of 500 lost at 50 ms)
// takes longer; 250 ms covers them and is still below a flood's period.
// An answer already waiting unread on the transfer's socket protects it
// however late (answerQueued). It counts from the send, not the request:
// a loaded server may take a while to get there. The grace protects a
// transfer only within its address's share and from addresses not known
// for silence (pendingQueue.victim); among such equals, requests beyond
// MaxPending per answerGrace (512 a second with the defaults) are
// dropped unanswered, and a genuine client repeats its request after
// its timer.
const answerGrace = 250 * time.Millisecond

// slotState is where a transfer stands in the Server's bookkeeping;
// guarded by Server.mu.
type slotState uint8

const (
	// slotPending: admitted, its client not heard yet; in Server.pending.
	slotPending slotState = iota
	// slotAnswered: the client acknowledged the OACK or DATA 1.
	slotAnswered
	// slotDropped: abandoned or evicted; its slot was given back then.
	slotDropped
)

// room is admit's verdict on a new request.
type room uint8

const (
	roomFree        room = iota // admitted
	roomBusy                    // every slot held by a client that answered: refuse, busy
	roomPendingFull             // the unanswered are all younger than answerGrace: drop
)

// pendingQueue holds the transfers whose client has not answered yet,
// oldest first: a transfer joins it when admitted, so in start order.
// An intrusive list, so a transfer leaves it in O(1) when answered. It
// counts them by client address too: the pending slots are shared out
// fairly between addresses (victim).
type pendingQueue struct {
	head, tail *transfer
	n          int
	byAddr     map[netip.Addr]int
	// silent is the addresses whose transfers recently gave back their
	// slot unanswered, and when one last did: a flood's. A request from
	// any other address comes first (victim). Bounded by maxSilent.
	silent throttle.Recent[netip.Addr]
}

// silentFor is how long an address whose transfer went unanswered is
// taken for a flood's; maxSilent bounds how many are remembered (past
// it, those older than silentFor are forgotten, or all if none is).
const (
	// maxRank is above any count of pending transfers an address holds.
	maxRank   = 1 << 30
	silentFor = time.Minute
	maxSilent = 16384
)

// unanswered remembers that a transfer from a gave back its slot without
// its client ever answering.
func (q *pendingQueue) unanswered(a netip.Addr, now time.Time) {
	if q.silent.Max == 0 { // the zero pendingQueue
		q.silent = throttle.Recent[netip.Addr]{Window: silentFor, Max: maxSilent}
	}
	q.silent.Mark(a, now)
}

// isSilent reports whether a's transfers went unanswered in the last
// silentFor.
func (q *pendingQueue) isSilent(a netip.Addr, now time.Time) bool {
	at, ok := q.silent.Last(a)
	return ok && now.Sub(at) < silentFor
}

func (q *pendingQueue) push(t *transfer) {
	if q.byAddr == nil {
		q.byAddr = map[netip.Addr]int{}
	}
	q.byAddr[t.key.Addr()]++
	t.prev, t.next = q.tail, nil
	if q.tail != nil {
		q.tail.next = t
	} else {
		q.head = t
	}
	q.tail = t
	q.n++
}

func (q *pendingQueue) remove(t *transfer) {
	if t.prev != nil {
		t.prev.next = t.next
	} else {
		q.head = t.next
	}
	if t.next != nil {
		t.next.prev = t.prev
	} else {
		q.tail = t.prev
	}
	t.prev, t.next = nil, nil
	q.n--
	if a := t.key.Addr(); q.byAddr[a] <= 1 {
		delete(q.byAddr, a)
	} else {
		q.byAddr[a]--
	}
}

// victim chooses the pending transfer that gives its slot to a request
// from addr, or nil when none may. First, a request from an address not
// known for unanswered transfers (isSilent) displaces at once one from
// an address that is: a flood's requests are never answered, so its
// addresses soon are, and a host asking from its own address gets a
// slot however fast the flood comes; a request from such an address
// displaces none but its own and those of its kind. Second, the slots
// are shared out
// between client addresses: once admitted, addr holds share; a transfer
// of an address that holds more than share may be displaced at once
// (it is beyond its fair share, and has no answerGrace), one of an
// address holding share exactly, or of addr itself, once displaceable;
// one of an address holding less never. Among those, the victim is
// from the address holding the most, the oldest of it. One whose answer
// waits unread is never chosen. O(MaxPending), under s.mu.
func (q *pendingQueue) victim(addr netip.Addr, now time.Time) *transfer {
	clean := !q.isSilent(addr, now)
	share := q.byAddr[addr] + 1
	var best *transfer
	bestRank := 0
	for v := q.head; v != nil; v = v.next {
		a := v.key.Addr()
		held := q.byAddr[a]
		rank := held
		switch silent := q.isSilent(a, now); {
		case clean && silent:
			rank += maxRank // before any address not known for silence
		case !clean && !silent && a != addr:
			continue // a flood's request never displaces anyone else's
		}
		if rank <= bestRank {
			continue // the oldest of an address ranked at least as high is chosen already
		}
		if (rank > maxRank || held > share) && !v.answerWaiting() || (held == share || a == addr) && v.displaceable(now) {
			best, bestRank = v, rank
		}
	}
	return best
}

// ports is one Serve's transfers by client address and port (to tell a
// repeated request from a new one) and its count of transfers per client
// address (MaxPerClient); guarded by Server.mu.
type ports struct {
	byPort map[netip.AddrPort]*transfer
	perIP  map[netip.Addr]int
}

// admit decides whether t, a request arriving at now, may start, and
// takes its slot if so. It makes room by giving back the slots of
// transfers whose client never answered, which it returns: the caller
// stops them once s.mu is released. Transfers whose client answered are
// never displaced. Called with s.mu held.
func (s *Server) admit(t *transfer, now time.Time, c *config) ([]*transfer, room) {
	var drop []*transfer
	q := &s.pending
	// A flood keeps half the pending slots or more in use; a transfer
	// left unanswered for pendingTimeout then gives its slot back. Below
	// that the unanswered keep their whole retry budget: a client on a
	// lossy link whose answer to our first packet was lost has locked
	// onto the transfer's port, and cannot start over if it is gone.
	for q.head != nil && 2*q.n >= c.maxPending && now.Sub(q.head.start) >= c.pendingTimeout && !q.head.answerWaiting() {
		q.unanswered(q.head.key.Addr(), now)
		drop = append(drop, s.dropPending(q.head))
		s.stats.unanswered.Add(1)
	}
	if q.n >= c.maxPending || s.stats.active.Load() >= c.maxTransfers {
		// Full: an unanswered transfer makes room (victim), unless every
		// one is within its address's share and too young to have been
		// answered (answerGrace).
		switch v := q.victim(t.key.Addr(), now); {
		case q.head == nil:
			return drop, roomBusy
		case v == nil:
			return drop, roomPendingFull
		default:
			q.unanswered(v.key.Addr(), now)
			drop = append(drop, s.dropPending(v))
			s.stats.evicted.Add(1)
		}
	}
	q.push(t)
	t.slot = slotPending
	s.stats.pending.Add(1)
	raisePeak(&s.stats.peakPending, int64(q.n))
	raisePeak(&s.stats.peakActive, s.stats.active.Add(1))
	return drop, roomFree
}

// displaceable reports whether v, a pending transfer, may give its slot
// to a new request at now: its first packet has been out for answerGrace
// and no answer from its client waits to be read. Its client may have
// locked onto its port already, and could not start over.
func (v *transfer) displaceable(now time.Time) bool {
	sent := v.sentAt.Load()
	return sent != 0 && now.Sub(time.Unix(0, sent)) >= answerGrace && !v.answerWaiting()
}

// answerWaiting reports whether v's client answered and v has not read
// it yet.
func (v *transfer) answerWaiting() bool {
	// conn is set before sentAt, and stays.
	return v.sentAt.Load() != 0 && answerQueued(v.conn)
}

// dropPending gives back the slot of v, a transfer not answered yet, and
// forgets its port so that its client's next request starts afresh.
// Called with s.mu held; the caller stops v.
func (s *Server) dropPending(v *transfer) *transfer {
	s.pending.remove(v)
	v.slot = slotDropped
	s.stats.pending.Add(-1)
	s.stats.active.Add(-1)
	if v.ports.byPort[v.key] == v {
		delete(v.ports.byPort, v.key)
	}
	return v
}

// answered moves t out of the pending transfers once its client has
// acknowledged the OACK or DATA 1. It fails with ErrUnanswered if t was
// dropped meanwhile: its slot is someone else's now.
func (s *Server) answered(t *transfer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch t.slot {
	case slotPending:
		s.pending.remove(t)
		t.slot = slotAnswered
		s.stats.pending.Add(-1)
	case slotDropped:
		return ErrUnanswered
	}
	return nil
}

// release gives back t's slot, if it still holds one, when it ends.
func (s *Server) release(t *transfer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch t.slot {
	case slotPending:
		s.pending.remove(t)
		s.stats.pending.Add(-1)
		fallthrough
	case slotAnswered:
		s.stats.active.Add(-1)
	}
	p := t.ports
	if p.byPort[t.key] == t {
		delete(p.byPort, t.key)
	}
	ip := t.key.Addr().Unmap()
	if p.perIP[ip]--; p.perIP[ip] <= 0 {
		delete(p.perIP, ip)
	}
}

// raisePeak stores v in peak if it is higher. Peaks are written with
// s.mu held, so a load and a store do.
func raisePeak(peak *atomic.Int64, v int64) {
	if v > peak.Load() {
		peak.Store(v)
	}
}
