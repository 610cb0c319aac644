package tftp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/stagehand-dev/stagehand/internal/throttle"
)

// Defaults for zero-valued Server fields.
const (
	DefaultMaxTransfers = 512
	// DefaultMaxPending and DefaultPendingTimeout bound the transfers
	// whose client has not answered yet (Server.MaxPending says why).
	DefaultMaxPending     = 128
	DefaultPendingTimeout = 2 * time.Second
	DefaultTimeout        = time.Second
	DefaultRetries        = 5
	DefaultMaxBlockSize   = 1468 // 1500-byte Ethernet MTU minus IPv4, UDP and TFTP headers
	DefaultMaxWindowSize  = 64
	// DefaultDrainTimeout matches the HTTP server's shutdown bound in
	// package server: a host mid-way through undionly.kpxe (about 70 KiB)
	// or ipxe.efi (about 1 MiB) finishes well inside it even lock-step.
	DefaultDrainTimeout = 10 * time.Second
)

// Sentinel errors reported in Transfer.Err; match with errors.Is.
var (
	// ErrTimeout: the client made no progress for MaxIdle and Retries retransmissions.
	ErrTimeout = errors.New("tftp: client stopped acknowledging")
	// ErrClientAbort: the client sent an ERROR packet. PXE ROMs do this on
	// purpose after learning tsize from the OACK, then ask again.
	ErrClientAbort = errors.New("tftp: client aborted the transfer")
	// ErrBusy: the request was refused because MaxTransfers were running.
	ErrBusy = errors.New("tftp: too many concurrent transfers")
	// ErrClientBusy: the request was refused because MaxPerClient
	// transfers from the same IP address were running.
	ErrClientBusy = errors.New("tftp: too many concurrent transfers from this address")
	// ErrUnanswered: the transfer's client had not acknowledged the OACK
	// or DATA 1 when its slot was given to another request (see
	// Server.MaxPending).
	ErrUnanswered = errors.New("tftp: client did not answer; slot given back")
	// errPendingFull: a request dropped because the pending transfer that
	// would give back its slot may still be answered (answerGrace).
	// Logged only: OnTransfer does not hear of it.
	errPendingFull = errors.New("tftp: every pending slot taken by a request just admitted")
	// ErrMode: the request asked for a mode other than octet.
	ErrMode = errors.New("tftp: only octet mode is served")
)

// Server is a read-only TFTP server. Its fields must not change once Serve
// has been called; one Server may Serve several sockets at once.
type Server struct {
	// Handler opens requested files. Required.
	Handler Handler
	// Log receives one line per finished transfer and debug lines for
	// dropped packets. The zero value logs nothing.
	Log zerolog.Logger
	// MaxTransfers caps concurrent transfers, the pending ones
	// (MaxPending) included. A request over the cap takes the slot of the
	// oldest pending transfer; when every slot is held by a client that
	// answered, it gets an ERROR. 0 means DefaultMaxTransfers.
	MaxTransfers int
	// MaxPending caps the transfers whose client has not yet acknowledged
	// the OACK or DATA 1. Firmware answers within milliseconds, so these
	// are few unless someone requests and never answers, from as many
	// addresses (forged, on a LAN) as it likes: MaxPerClient cannot stop
	// that, and without this cap 560 requests from 70 addresses held all
	// 512 slots for half a minute. A request over the cap takes the slot
	// of the oldest pending transfer (older than answerGrace, or it is
	// dropped unanswered): refusing it instead would let a flood of
	// MaxPending requests per PendingTimeout (64 a second) keep every
	// genuine client out, while displacing the oldest makes a flood
	// outrun the client's own round trip. Transfers whose client answered
	// are never displaced. 0 means DefaultMaxPending; more than
	// MaxTransfers means MaxTransfers.
	MaxPending int
	// PendingTimeout is how long a pending transfer keeps its slot once
	// half the MaxPending slots are in use: older ones give it back to
	// the next request. With fewer pending it keeps the whole retry budget
	// (MaxIdle), as a client on a lossy link that has our first packet
	// but whose answers are lost cannot start over once the transfer it
	// locked onto is gone. 0 means DefaultPendingTimeout.
	PendingTimeout time.Duration
	// MaxPerClient caps concurrent transfers from one IP address, so that
	// one misbehaving or hostile client, which requests and never ACKs,
	// cannot hold every MaxTransfers slot for MaxIdle and lock a rack out
	// of its iPXE binary. PXE firmware runs one transfer at a time (its
	// tsize probe is aborted before the real request). 0 means no cap,
	// for benchmarks whose clients all share one address.
	MaxPerClient int
	// Timeout is the retransmission timeout; a client's RFC 2349 timeout
	// option overrides it. After two resends of one packet the interval
	// doubles, up to 8 s (retryPolicy.wait says why). 0 means DefaultTimeout.
	Timeout time.Duration
	// Retries is how many times a packet is retransmitted, at least,
	// before the transfer may be abandoned; MaxIdle must have passed too.
	// 0 means DefaultRetries.
	Retries int
	// MaxIdle is how long a transfer may go without progress (a new ACK)
	// before it is abandoned; the count of retransmissions starts again
	// at every new ACK. A dead client is dropped after at most
	// max(MaxIdle, (Retries+1)×timeout) + max(timeout, 8 s): 33 s with the
	// defaults. 0 means DefaultMaxIdle.
	MaxIdle time.Duration
	// MaxBlockSize caps the RFC 2348 blksize. 0 means DefaultMaxBlockSize.
	MaxBlockSize int
	// MaxWindowSize caps the RFC 7440 windowsize. 0 means DefaultMaxWindowSize.
	MaxWindowSize int
	// DrainTimeout bounds how long transfers in flight may go on after ctx
	// is cancelled; those still running then are ended with an ERROR.
	// 0 means DefaultDrainTimeout; a negative value ends them at once.
	DrainTimeout time.Duration
	// OnTransfer, when set, is called once per read request after it
	// finished or failed, and for requests refused because MaxTransfers
	// were running, but not for those over MaxPerClient (see refuse) nor
	// for pending transfers that gave back their slot or requests dropped
	// for want of one (see overloaded): a flood would flood whatever
	// OnTransfer writes to. It runs on the transfer's goroutine (on the
	// read loop for refusals), so it must be quick and safe for
	// concurrent use.
	OnTransfer func(Transfer)

	stats      counters
	refuseWarn throttle.Every // the refusal warning, once per refuseWarnEvery

	// mu guards the slots: pending, each transfer's slot and each
	// Serve's ports. The transfers holding a slot, pending ones included,
	// are stats.active, which changes only under mu.
	mu      sync.Mutex
	pending pendingQueue
}

// Transfer describes one finished read request.
type Transfer struct {
	Remote     net.Addr
	File       string
	Bytes      int64 // file bytes acknowledged by the client
	Err        error // nil on success
	Duration   time.Duration
	BlockSize  int
	WindowSize int
}

// Stats is a snapshot of a Server's counters since it was created.
type Stats struct {
	TransfersOK      uint64 // completed, last block acknowledged
	TransfersFailed  uint64 // not found, access, timed out, read errors, shutdown (refusals: RefusedBusy, RefusedPerClient)
	TransfersAborted uint64 // the client sent ERROR (includes PXE tsize probes)
	Active           int64  // transfers holding a slot now, Pending included
	Pending          int64  // of those, transfers whose client has not answered yet
	PeakActive       int64  // the most Active at once since the Server was created
	PeakPending      int64  // the most Pending at once
	Bytes            uint64 // file bytes acknowledged
	Retransmits      uint64 // packets sent again after a timeout
	ErrorsSent       uint64 // ERROR packets sent
	BadPackets       uint64 // malformed or unexpected packets dropped
	DuplicateRRQs    uint64 // retransmitted requests for a transfer already running
	RefusedBusy      uint64 // requests refused: MaxTransfers running
	RefusedPerClient uint64 // requests refused: MaxPerClient running from that address
	RefusedPending   uint64 // requests dropped unanswered: the oldest pending transfer may still be answered (answerGrace)
	Unanswered       uint64 // pending transfers that gave back their slot after PendingTimeout (half MaxPending in use)
	Evicted          uint64 // pending transfers that gave their slot to a newer request (a cap reached)
}

type counters struct {
	ok, failed, aborted, bytes, retransmits, errorsSent, bad, dupRRQ atomic.Uint64
	refusedBusy, refusedPerClient, refusedPending                    atomic.Uint64
	unanswered, evicted                                              atomic.Uint64
	active, pending, peakActive, peakPending                         atomic.Int64
}

// Stats returns the current counters. It is safe to call concurrently with Serve.
func (s *Server) Stats() Stats {
	c := &s.stats
	return Stats{
		TransfersOK:      c.ok.Load(),
		TransfersFailed:  c.failed.Load(),
		TransfersAborted: c.aborted.Load(),
		Active:           c.active.Load(),
		Pending:          c.pending.Load(),
		PeakActive:       c.peakActive.Load(),
		PeakPending:      c.peakPending.Load(),
		Bytes:            c.bytes.Load(),
		Retransmits:      c.retransmits.Load(),
		ErrorsSent:       c.errorsSent.Load(),
		BadPackets:       c.bad.Load(),
		DuplicateRRQs:    c.dupRRQ.Load(),
		RefusedBusy:      c.refusedBusy.Load(),
		RefusedPerClient: c.refusedPerClient.Load(),
		RefusedPending:   c.refusedPending.Load(),
		Unanswered:       c.unanswered.Load(),
		Evicted:          c.evicted.Load(),
	}
}

// config is the Server's fields with defaults applied.
type config struct {
	maxTransfers   int64
	maxPending     int
	pendingTimeout time.Duration
	perClient      int
	retries        int
	maxIdle        time.Duration
	drain          time.Duration
	lim            limits
}

func (s *Server) config() config {
	c := config{
		maxTransfers:   int64(s.MaxTransfers),
		maxPending:     s.MaxPending,
		pendingTimeout: s.PendingTimeout,
		perClient:      max(s.MaxPerClient, 0),
		retries:        s.Retries,
		maxIdle:        s.MaxIdle,
		drain:          s.DrainTimeout,
		lim:            limits{maxBlock: s.MaxBlockSize, maxWindow: s.MaxWindowSize, timeout: s.Timeout},
	}
	if c.maxTransfers <= 0 {
		c.maxTransfers = DefaultMaxTransfers
	}
	if c.maxPending <= 0 {
		c.maxPending = DefaultMaxPending
	}
	c.maxPending = int(min(int64(c.maxPending), c.maxTransfers))
	if c.pendingTimeout <= 0 {
		c.pendingTimeout = DefaultPendingTimeout
	}
	if c.retries <= 0 {
		c.retries = DefaultRetries
	}
	if c.maxIdle <= 0 {
		c.maxIdle = DefaultMaxIdle
	}
	if c.drain == 0 {
		c.drain = DefaultDrainTimeout
	}
	if c.lim.maxBlock <= 0 {
		c.lim.maxBlock = DefaultMaxBlockSize
	}
	c.lim.maxBlock = max(min(c.lim.maxBlock, maxBlockSize), minBlockSize)
	if c.lim.maxWindow <= 0 {
		c.lim.maxWindow = DefaultMaxWindowSize
	}
	c.lim.maxWindow = min(c.lim.maxWindow, maxWindowSize)
	if c.lim.timeout <= 0 {
		c.lim.timeout = DefaultTimeout
	}
	return c
}

// classifyAgain classifies raw, an RRQ from the port of the running
// transfer t: a repeat or the network's copy belongs to t, anything else
// starts a new transfer. A second transfer to the same client port would
// race the first and double the traffic, as in.tftpd's duplicate
// children do under load, and a client that gets answers from two TIDs
// can lose both (curl did, in CI).
func classifyAgain(t *transfer, raw []byte, now time.Time) rrqAction {
	heard := t.lastHeard.Load()
	return classifyRRQ(heard != 0, t.clientEnded.Load(), t.raw == string(raw), now.Sub(time.Unix(0, heard)))
}

// Serve answers read requests arriving on conn, a UDP socket the caller
// opened (127.0.0.1:0 in tests, <ip>:69 in production), until ctx is
// cancelled. Each transfer runs from its own ephemeral UDP socket bound to
// conn's local IP, which is the transfer ID of RFC 1350 section 4. When ctx
// is cancelled Serve closes conn, so new requests are refused by the kernel
// (ICMP port unreachable, which clients retry elsewhere or later), lets
// in-flight transfers finish for up to DrainTimeout, ends the rest with an
// ERROR to their clients, waits for them and returns nil. A read error on
// conn ends the transfers at once, the same way, and is returned.
func (s *Server) Serve(ctx context.Context, conn net.PacketConn) error {
	if s.Handler == nil {
		return errors.New("tftp: Server.Handler is nil")
	}
	local, ok := conn.LocalAddr().(*net.UDPAddr)
	if !ok {
		return fmt.Errorf("tftp: Serve needs a UDP socket, got %T", conn)
	}
	cfg := s.config()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	l := &loop{s: s, conn: conn, local: local, cfg: &cfg,
		ports: &ports{byPort: make(map[netip.AddrPort]*transfer), perIP: make(map[netip.Addr]int)}}
	// Transfers outlive ctx by up to the drain bound: a host half-way
	// through its iPXE binary would otherwise retry from DHCP, against a
	// server that may not come back.
	var cancel context.CancelFunc
	l.tctx, cancel = context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		if ctx.Err() != nil && cfg.drain > 0 {
			s.drain(&l.wg, cfg.drain)
		}
		cancel()
		l.wg.Wait()
	}()

	// One byte more than the largest valid request so oversized ones are
	// seen as such rather than silently truncated.
	buf := make([]byte, maxRequestSize+1)
	for {
		n, addr, err := conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("tftp: read: %w", err)
		}
		ua, ok := addr.(*net.UDPAddr)
		if !ok {
			continue
		}
		req, err := parseRequest(buf[:n])
		if err != nil {
			s.stats.bad.Add(1)
			s.Log.Debug().Stringer("remote", ua).Int("len", n).Err(err).Msg("tftp: dropped packet")
			continue
		}
		switch {
		case ctx.Err() != nil:
			// Read before conn closed, seen after the cancel: no new
			// transfer may start during the drain.
			s.reply(conn, addr, errUndefined, "server shutting down")
		case req.op == opWRQ:
			s.reply(conn, addr, errAccess, "read-only server")
			s.Log.Info().Stringer("remote", ua).Str("file", sanitize(req.filename)).Msg("tftp: write request refused")
		default:
			l.request(ua, req, buf[:n])
		}
	}
}

// loop is one Serve's read loop and the transfers it started.
type loop struct {
	s     *Server
	conn  net.PacketConn
	local *net.UDPAddr
	cfg   *config
	tctx  context.Context // the transfers' context: outlives Serve's by the drain
	wg    sync.WaitGroup
	ports *ports
}

// request answers a read request from ua: the transfer it repeats, a
// refusal, or a new transfer.
func (l *loop) request(ua *net.UDPAddr, req request, raw []byte) {
	s, remote, now := l.s, ua.AddrPort(), time.Now()
	s.mu.Lock()
	if t := l.ports.byPort[remote]; t != nil {
		if c := classifyAgain(t, raw, now); c != rrqNew {
			s.mu.Unlock()
			s.stats.dupRRQ.Add(1)
			// A repeat because our OACK was lost: the transfer answers
			// with the OACK again. A copy gets nothing.
			if c == rrqRepeat {
				t.repeatedRRQ(now)
			}
			return
		}
	}
	ip := remote.Addr().Unmap()
	if l.cfg.perClient > 0 && l.ports.perIP[ip] >= l.cfg.perClient {
		s.mu.Unlock()
		s.stats.refusedPerClient.Add(1)
		s.refuse(l.conn, ua, req, "too many transfers from your address, retry later", ErrClientBusy)
		return
	}
	t := &transfer{s: s, cfg: l.cfg, remote: ua, key: remote, ports: l.ports, req: req, raw: string(raw), start: now}
	drop, r := s.admit(t, now, l.cfg)
	if r == roomFree {
		// Stoppable before s.mu is released: another Serve's read loop
		// may drop it before it starts.
		t.ctx, t.stop = context.WithCancelCause(l.tctx)
		l.ports.byPort[remote] = t
		l.ports.perIP[ip]++
	}
	s.mu.Unlock()
	for _, v := range drop {
		v.stop(ErrUnanswered)
		s.overloaded(v.remote, v.req, ErrUnanswered)
	}
	switch r {
	case roomBusy:
		s.stats.refusedBusy.Add(1)
		s.refuse(l.conn, ua, req, "server busy, retry later", ErrBusy)
	case roomPendingFull:
		// Unanswered: in a flood, requests are mostly the flood's own,
		// perhaps from forged addresses, and a genuine client takes a
		// lost request for loss and repeats it, where an ERROR would end
		// it (curl and atftp give up on one).
		s.stats.refusedPending.Add(1)
		s.overloaded(ua, req, errPendingFull)
	case roomFree:
		l.start(t)
	}
}

// start runs t on its own goroutine.
func (l *loop) start(t *transfer) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		res := t.run(l.local.IP, l.local.Zone)
		t.stop(nil)
		l.s.release(t)
		l.s.finish(res)
	}()
}

// drain waits for wg up to d and reports how many transfers it left
// running.
func (s *Server) drain(wg *sync.WaitGroup, d time.Duration) {
	n := s.stats.active.Load()
	if n == 0 {
		return
	}
	s.Log.Info().Int64("active", n).Dur("bound", d).Msg("tftp: draining transfers")
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		s.Log.Warn().Int64("active", s.stats.active.Load()).Msg("tftp: drain bound reached, aborting transfers")
	}
}

// reply sends an ERROR from the listening socket.
func (s *Server) reply(conn net.PacketConn, to net.Addr, code errorCode, msg string) {
	var b [64]byte
	if _, err := conn.WriteTo(appendError(b[:0], code, msg), to); err != nil {
		s.Log.Debug().Err(err).Msg("tftp: send error")
		return
	}
	s.stats.errorsSent.Add(1)
}

// refuseWarnEvery rate-limits the warning about refused requests: a
// flood is refused thousands of times a second, and one log line per
// refusal would turn it into a flood of the log.
const refuseWarnEvery = time.Minute

// refuse answers a request that may not start with an ERROR from the
// listening socket (opening a socket per refusal is the work an overload
// should not cause). It is counted (Stats), logged at debug level, and
// warned about at most once per refuseWarnEvery. OnTransfer hears of
// ErrBusy refusals, which a rack's storm causes, but not of ErrClientBusy
// ones: those come from one address flooding, and reporting each would
// let it flood whatever OnTransfer writes to (the inventory's events).
func (s *Server) refuse(conn net.PacketConn, to *net.UDPAddr, req request, msg string, err error) {
	s.reply(conn, to, errUndefined, msg)
	s.overloaded(to, req, err)
	if s.OnTransfer != nil && errors.Is(err, ErrBusy) {
		s.OnTransfer(Transfer{Remote: to, File: req.filename, Err: err, BlockSize: defaultBlockSize, WindowSize: 1})
	}
}

// overloaded logs a request refused, dropped or ended early for want of
// a slot: at debug level each, as a warning at most once per
// refuseWarnEvery.
func (s *Server) overloaded(to *net.UDPAddr, req request, err error) {
	s.Log.Debug().Stringer("remote", to).Str("file", sanitize(req.filename)).Err(err).Msg("tftp: no slot")
	if s.refuseWarn.Allow(time.Now(), refuseWarnEvery) {
		c := &s.stats
		s.Log.Warn().Stringer("remote", to).Err(err).Uint64("refusedBusy", c.refusedBusy.Load()).
			Uint64("refusedPerClient", c.refusedPerClient.Load()).Uint64("refusedPending", c.refusedPending.Load()).
			Uint64("unanswered", c.unanswered.Load()).Uint64("evicted", c.evicted.Load()).
			Msg("tftp: refusing requests (logged at most once a minute; see the counters)")
	}
}

// finish counts, logs and reports one finished request.
func (s *Server) finish(res Transfer) {
	c := &s.stats
	if errors.Is(res.Err, ErrUnanswered) {
		// Counted and logged when its slot was given back.
		c.bytes.Add(uint64(res.Bytes))
		return
	}
	switch {
	case res.Err == nil:
		c.ok.Add(1)
	case errors.Is(res.Err, ErrClientAbort):
		c.aborted.Add(1)
	default:
		c.failed.Add(1)
	}
	c.bytes.Add(uint64(res.Bytes))
	ev := s.Log.Info()
	if res.Err != nil && !errors.Is(res.Err, ErrClientAbort) {
		ev = s.Log.Warn()
	}
	ev.Stringer("remote", res.Remote).Str("file", sanitize(res.File)).Int64("bytes", res.Bytes).
		Dur("duration", res.Duration).Int("blksize", res.BlockSize).Int("windowsize", res.WindowSize).
		Err(res.Err).Msg("tftp: transfer")
	if s.OnTransfer != nil {
		s.OnTransfer(res)
	}
}

// sanitize keeps control characters from a client's filename out of logs.
func sanitize(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) < 0 {
		return s
	}
	return fmt.Sprintf("%q", s)
}
