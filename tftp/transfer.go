package tftp

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

var (
	// errWait: the deadline passed without an ACK that moved the transfer on.
	errWait = errors.New("tftp: no acknowledgement before the deadline")
	// errCanceled: the server is shutting down.
	errCanceled = fmt.Errorf("tftp: server shutting down: %w", context.Canceled)
)

// Per-transfer buffers: DATA packets (one block-sized buffer per transfer
// whatever the window: a block to resend is copied again from the
// read-ahead or read again) and read-ahead chunks.
var pktPool, chunkPool sync.Pool

func getBuf(p *sync.Pool, n int) *[]byte {
	if b, ok := p.Get().(*[]byte); ok && cap(*b) >= n {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n)
	return &b
}

// transfer is one read request being served from its own socket.
type transfer struct {
	s      *Server
	cfg    *config
	remote *net.UDPAddr
	key    netip.AddrPort // remote, as ports keys it
	req    request
	start  time.Time

	// ctx ends the transfer: stop(ErrUnanswered) when its slot is given
	// back, its parent's cancel when the drain is over.
	ctx  context.Context
	stop context.CancelCauseFunc
	// Guarded by s.mu: its Serve's bookkeeping, where it stands in it,
	// and its place in s.pending while it is pending.
	ports      *ports
	slot       slotState
	prev, next *transfer
	// answered is set once the client acknowledged the OACK or DATA 1
	// and s.answered agreed; the transfer's goroutine only.
	answered bool
	// sentAt is when the OACK or DATA 1 first went out (Unix
	// nanoseconds; 0 before): a client has had answerGrace to answer
	// only from then on, however long a loaded server took to get there.
	sentAt atomic.Int64

	// raw is the request as it came, to tell a copy of it from a new one.
	raw string
	// lastHeard is when the client was last heard from (Unix nanoseconds;
	// 0 until its first packet reaches conn, then the time of each ACK
	// that moved the transfer on, which sendFile reads the clock for
	// anyway), and clientEnded is set when it sent ERROR. From its first
	// packet on, the client has locked onto our TID; what the read loop
	// makes of a later RRQ from the same port is classifyRRQ's decision.
	lastHeard   atomic.Int64
	clientEnded atomic.Bool
	canceled    atomic.Bool
	// oack is set while the transfer waits for ACK 0, for the read loop
	// to resend on a repeated RRQ; oackSent is when an OACK last went out
	// (Unix nanoseconds), from either goroutine.
	oack     atomic.Pointer[oackState]
	oackSent atomic.Int64

	conn   *net.UDPConn
	blocks *blockReader
	buf    []byte
	// rbuf holds one client packet; longer ERROR messages are truncated.
	rbuf [maxRequestSize + 4]byte
}

type oackState struct {
	conn *net.UDPConn
	pkt  []byte
}

// run serves the request and reports its outcome.
func (t *transfer) run(ip net.IP, zone string) (res Transfer) {
	res = Transfer{Remote: t.remote, File: t.req.filename, BlockSize: defaultBlockSize, WindowSize: 1}
	defer func() { res.Duration = time.Since(t.start) }()

	// A connected socket: the kernel drops datagrams from any other
	// address or port, which RFC 1350 section 4 otherwise asks us to
	// answer with ERROR 5 — it sends ICMP port unreachable instead.
	conn, err := net.DialUDP("udp", &net.UDPAddr{IP: ip, Zone: zone}, t.remote)
	if err != nil {
		res.Err = fmt.Errorf("tftp: open transfer socket: %w", err)
		return res
	}
	defer conn.Close()
	t.conn = conn
	stop := context.AfterFunc(t.ctx, func() {
		t.canceled.Store(true)
		conn.SetReadDeadline(time.Unix(1, 0))
	})
	defer stop()

	// Only octet: netascii would rewrite CR and LF in binaries, and PXE
	// ROMs, iPXE and every client we test send "octet" anyway.
	if !strings.EqualFold(t.req.mode, "octet") {
		t.sendError(errIllegalOp, "only octet mode is supported")
		res.Err = fmt.Errorf("%w: %q", ErrMode, sanitize(t.req.mode))
		return res
	}
	f, size, err := t.s.Handler.Open(t.req.filename, t.remote)
	if err == nil && size < 0 {
		f.Close()
		err = fmt.Errorf("tftp: handler returned size %d", size)
	}
	if err != nil {
		code, msg := openErrorCode(err)
		t.sendError(code, msg)
		res.Err = err
		return res
	}
	defer f.Close()

	p := negotiate(t.req.options, size, t.cfg.lim)
	res.BlockSize, res.WindowSize = p.blockSize, p.windowSize
	bp := getBuf(&pktPool, 4+p.blockSize)
	defer pktPool.Put(bp)
	t.buf = *bp
	t.blocks = newBlockReader(f, size, p.blockSize, p.windowSize)
	defer t.blocks.release()

	pol := retryPolicy{timeout: p.timeout, minRetries: t.cfg.retries, maxIdle: t.cfg.maxIdle}
	t.sentAt.Store(time.Now().UnixNano())
	if len(p.oack) > 0 {
		err = t.sendOACK(p, pol)
	}
	if err == nil {
		res.Bytes, err = t.sendFile(p, pol, size)
	}
	if errors.Is(err, errCanceled) {
		t.sendError(errUndefined, "server shutting down")
	}
	res.Err = err
	return res
}

// sendOACK sends the option acknowledgement and waits for ACK 0, which
// RFC 2347 requires before DATA 1. The OACK goes out again when the client
// repeats its RRQ (repeatedRRQ) and on our own timer only as a backstop
// (retryPolicy.oackResend says why).
func (t *transfer) sendOACK(p params, pol retryPolicy) error {
	// Its own buffer: the read loop may resend it while t.buf is reused.
	pkt := appendOACK(nil, p.oack)
	if _, err := t.conn.Write(pkt); err != nil {
		return fmt.Errorf("tftp: send OACK: %w", err)
	}
	start := time.Now()
	t.oackSent.Store(start.UnixNano())
	t.oack.Store(&oackState{conn: t.conn, pkt: pkt})
	defer t.oack.Store(nil)
	for tries := 1; ; tries++ {
		deadline := time.Now().Add(p.timeout)
		for {
			block, err := t.await(deadline)
			if err == errWait {
				break
			}
			if err != nil {
				return err
			}
			if block == 0 {
				return t.answer()
			}
		}
		now := time.Now()
		if pol.giveUp(now.Sub(start), tries) {
			return ErrTimeout
		}
		last := t.oackSent.Load()
		if pol.oackResend(now.Sub(time.Unix(0, last))) && t.oackSent.CompareAndSwap(last, now.UnixNano()) {
			t.s.stats.retransmits.Add(1)
			if _, err := t.conn.Write(pkt); err != nil {
				return fmt.Errorf("tftp: send OACK: %w", err)
			}
		}
	}
}

// repeatedRRQ is called from the read loop when the client sent its RRQ
// again before we heard from it: our OACK may have been lost, so it is
// resent, unless it went out less than rrqGap ago (the RRQ was then
// duplicated in the network, not repeated by the client).
func (t *transfer) repeatedRRQ(now time.Time) {
	o := t.oack.Load()
	if o == nil {
		return
	}
	last := t.oackSent.Load()
	if !answerRRQ(now.Sub(time.Unix(0, last))) || !t.oackSent.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	// A write racing with the transfer's end fails on the closed socket,
	// which is harmless.
	if _, err := o.conn.Write(o.pkt); err == nil {
		t.s.stats.retransmits.Add(1)
	}
}

// sendFile sends the file in windows of p.windowSize blocks (RFC 7440; a
// window of one is RFC 1350 lock-step) and returns the bytes acknowledged.
// Blocks are numbered from 1 as int64 and sent as their low 16 bits, so the
// wire number wraps from 65535 to 0 on long transfers.
//
// pol sets the retransmission timer (p.timeout, backing off after
// repeated losses) and decides when a client that makes no progress is
// abandoned.
func (t *transfer) sendFile(p params, pol retryPolicy, size int64) (int64, error) {
	bs := int64(p.blockSize)
	// A file of exactly k blocks ends with an empty block k+1: a short
	// block is the only end-of-file marker (RFC 1350 section 6).
	last := size/bs + 1
	w := int64(p.windowSize)
	base := int64(1) // first unacknowledged block
	acked := func() int64 { return min((base-1)*bs, size) }
	// tries counts timer expiries since the last progress (an ACK that
	// moved the window), which happened at progress.
	tries, progress := 0, time.Now()
	for {
		end := min(base+w-1, last)
		for b := base; b <= end; b++ {
			if err := t.sendBlock(b); err != nil {
				return acked(), err
			}
		}
		deadline := time.Now().Add(pol.wait(tries))
		// Let the other transfers send first: under load our ACK is then
		// usually queued when we read, which saves a read that fails with
		// EAGAIN and a netpoller park and wake per window. Measured with
		// bench/tftp/compare.sh: 3-5% less server CPU per transfer at 50
		// lock-step clients. With nothing else runnable it returns at once.
		runtime.Gosched()
		for {
			a, err := t.await(deadline)
			if err == errWait {
				tries++
				if pol.giveUp(time.Since(progress), tries) {
					return acked(), ErrTimeout
				}
				t.s.stats.retransmits.Add(uint64(end - base + 1))
				break
			}
			if err != nil {
				return acked(), err
			}
			// d counts the blocks this ACK confirms beyond base-1. Zero is
			// a duplicate of the previous ACK and anything past the window
			// is stale: both are ignored, never answered with data, which
			// is the Sorcerer's Apprentice fix of RFC 1123 4.2.3.1. An ACK
			// inside the window restarts sending after it (RFC 7440 4).
			d := int64(a - uint16(base-1))
			if d == 0 || d > end-base+1 {
				continue
			}
			tries, progress = 0, time.Now()
			t.lastHeard.Store(progress.UnixNano())
			if err := t.answer(); err != nil {
				return acked(), err
			}
			base += d
			if base > last {
				return size, nil
			}
			break
		}
	}
}

// answer tells the Server that the client acknowledged the OACK or
// DATA 1, the first time it does: its slot is no longer pending.
func (t *transfer) answer() error {
	if t.answered {
		return nil
	}
	if err := t.s.answered(t); err != nil {
		return err
	}
	t.answered = true
	return nil
}

// halted is why a transfer whose context ended stops: its slot was given
// back, or the server is shutting down.
func (t *transfer) halted() error {
	if c := context.Cause(t.ctx); errors.Is(c, ErrUnanswered) {
		return c
	}
	return errCanceled
}

// sendBlock copies block b from the read-ahead into the DATA buffer and
// sends it.
func (t *transfer) sendBlock(b int64) error {
	data, err := t.blocks.block(b)
	if err != nil {
		t.sendError(errUndefined, "read error")
		return fmt.Errorf("tftp: %s: %w", t.req.filename, err)
	}
	pkt := t.buf[:4+len(data)]
	putDataHeader(pkt, uint16(b))
	copy(pkt[4:], data)
	if _, err := t.conn.Write(pkt); err != nil {
		return fmt.Errorf("tftp: send block: %w", err)
	}
	return nil
}

// await reads the client's packets until an ACK arrives or the deadline
// passes. An ERROR from the client ends the transfer quietly (RFC 1350
// section 7: errors are not acknowledged or retransmitted).
func (t *transfer) await(deadline time.Time) (uint16, error) {
	if err := t.conn.SetReadDeadline(deadline); err != nil {
		return 0, err
	}
	// Checked after setting the deadline: a cancel racing with it has
	// either set the flag already or will move the deadline to the past.
	if t.canceled.Load() {
		return 0, t.halted()
	}
	for {
		n, err := t.conn.Read(t.rbuf[:])
		if err != nil {
			if t.canceled.Load() {
				return 0, t.halted()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return 0, errWait
			}
			// Typically ECONNREFUSED: the client's port is gone.
			return 0, fmt.Errorf("tftp: client unreachable: %w", err)
		}
		if t.lastHeard.Load() == 0 {
			t.lastHeard.Store(time.Now().UnixNano())
		}
		r, err := parseReply(t.rbuf[:n])
		switch {
		case err != nil:
			t.s.stats.bad.Add(1)
		case r.op == opACK:
			return r.block, nil
		case r.op == opERROR:
			t.clientEnded.Store(true)
			return 0, fmt.Errorf("%w: code %d: %s", ErrClientAbort, r.code, sanitize(r.msg))
		default:
			t.s.stats.bad.Add(1)
		}
	}
}

// sendError sends an ERROR from the transfer's socket; failures are moot
// because the transfer ends either way.
func (t *transfer) sendError(code errorCode, msg string) {
	var b [64]byte
	if _, err := t.conn.Write(appendError(b[:0], code, msg)); err == nil {
		t.s.stats.errorsSent.Add(1)
	}
}

// openErrorCode maps a Handler error to what the client is told; the error
// text itself stays in our logs.
func openErrorCode(err error) (errorCode, string) {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return errNotFound, "file not found"
	case errors.Is(err, fs.ErrPermission):
		return errAccess, "access violation"
	default:
		return errUndefined, "cannot open file"
	}
}
