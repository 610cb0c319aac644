package tftptest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Get fetches file from the server at addr ("host:port").
func (c *Client) Get(addr, file string) (*Result, error) {
	raddr, err := resolve(addr)
	if err != nil {
		return nil, err
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: c.Local})
	if err != nil {
		return nil, err
	}
	x := &transfer{c: c, conn: conn, raddr: raddr, expected: 1, tsize: -1,
		res: &Result{Blksize: 512, Window: 1}}
	defer func() {
		if x.res.Conn == nil {
			conn.Close()
		}
	}()
	x.timeout, x.retries = c.Timeout, c.Retries
	if x.timeout <= 0 {
		x.timeout = 5 * time.Second
	}
	if x.retries <= 0 {
		x.retries = 3
	}
	want := 512
	for _, o := range c.Options {
		if strings.EqualFold(o.Name, "blksize") {
			if v, err := strconv.Atoi(o.Value); err == nil {
				want = max(want, v)
			}
		}
	}
	x.grow(want)
	if c.Buf != nil {
		x.res.Data = c.Buf[:0]
	}
	x.last, x.lastTo = RRQ(file, c.Mode, c.Options...), raddr
	if _, err := conn.WriteToUDPAddrPort(x.last, raddr); err != nil {
		return x.res, err
	}
	for {
		if done, err := x.step(); done || err != nil {
			return x.res, err
		}
	}
}

// resolve parses "ip:port" without a lookup, and asks the resolver only
// for a name.
func resolve(addr string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		ua, rerr := net.ResolveUDPAddr("udp", addr)
		if rerr != nil {
			return netip.AddrPort{}, rerr
		}
		ap = ua.AddrPort()
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// transfer is one Get's state.
type transfer struct {
	c            *Client
	conn         *net.UDPConn
	raddr        netip.AddrPort
	tid          netip.AddrPort // the server's transfer ID, once known
	res          *Result
	timeout      time.Duration
	retries      int
	last         []byte         // what a timeout resends
	lastTo       netip.AddrPort // and where
	ackBuf       [4]byte
	expected     int64 // next block wanted, from 1
	inWin        int   // blocks since the last ACK
	nakSent      bool  // an ACK for a gap went out since the last progress
	tries, oacks int
	tsize        int // from the OACK; -1 without
	buf          []byte
	sentERROR    bool
}

func (x *transfer) grow(blksize int) {
	if need := 4 + blksize + 1; cap(x.c.buf) < need {
		x.c.buf = make([]byte, need)
	}
	x.buf = x.c.buf[:cap(x.c.buf)]
}

// step waits for one packet and handles it; done ends the transfer.
func (x *transfer) step() (done bool, err error) {
	dl := time.Now().Add(x.timeout)
	if d := x.c.Deadline; !d.IsZero() && d.Before(dl) {
		dl = d
	}
	x.conn.SetReadDeadline(dl)
	n, from, err := x.conn.ReadFromUDPAddrPort(x.buf)
	if err != nil {
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			return true, err
		}
		return x.expired()
	}
	if n < 4 {
		return false, nil
	}
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	if !x.tid.IsValid() {
		// Only the server asked may pick the transfer ID.
		if !x.raddr.Addr().IsUnspecified() && from.Addr() != x.raddr.Addr() {
			return false, nil
		}
		x.tid = from
		x.res.Server = net.UDPAddrFromAddrPort(from)
	} else if from != x.tid {
		return false, nil // RFC 1350 §4: another transfer's packet
	}
	switch op := binary.BigEndian.Uint16(x.buf); op {
	case opERROR:
		return true, &RemoteError{Code: binary.BigEndian.Uint16(x.buf[2:]), Msg: strings.TrimRight(string(x.buf[4:n]), "\x00"), From: x.res.Server}
	case opOACK:
		return x.oack(x.buf[2:n])
	case opDATA:
		return x.data(binary.BigEndian.Uint16(x.buf[2:]), x.buf[4:n])
	default:
		return true, fmt.Errorf("tftptest: unexpected opcode %d", op)
	}
}

// expired handles a read timeout: the deadline, too many resends, or a
// resend of the last packet (to the transfer ID once known).
func (x *transfer) expired() (bool, error) {
	if d := x.c.Deadline; !d.IsZero() && !time.Now().Before(d) {
		x.abort(0, "deadline")
		return true, ErrDeadline
	}
	if x.tries >= x.retries {
		x.abort(0, "no answer")
		return true, fmt.Errorf("%w after %d resends (block %d, %d bytes in)", ErrNoAnswer, x.retries, x.expected, x.res.Size)
	}
	x.tries++
	x.res.Resends++
	to := x.lastTo
	if x.tid.IsValid() {
		to = x.tid
	}
	_, err := x.conn.WriteToUDPAddrPort(x.last, to)
	return err != nil, err
}

// abort tells the server the transfer is over, once.
func (x *transfer) abort(code uint16, msg string) {
	if x.tid.IsValid() && !x.sentERROR {
		x.sentERROR = true
		x.conn.WriteToUDPAddrPort(errorPacket(code, msg), x.tid)
	}
}

// sendAck sends ACK block to the transfer ID and keeps it for resending.
func (x *transfer) sendAck(block uint16) error {
	binary.BigEndian.PutUint16(x.ackBuf[:], opACK)
	binary.BigEndian.PutUint16(x.ackBuf[2:], block)
	x.last, x.lastTo = x.ackBuf[:], x.tid
	n := 1
	if x.c.DupAcks {
		n = 2
	}
	for range n {
		if _, err := x.conn.WriteToUDPAddrPort(x.last, x.tid); err != nil {
			return err
		}
	}
	return nil
}

// oack takes the server's options (RFC 2347) and answers ACK 0.
func (x *transfer) oack(body []byte) (bool, error) {
	x.oacks++
	if x.oacks <= x.c.DropOACK || x.res.OACK != nil {
		return false, nil // dropped on purpose, or a duplicate after our ACK 0
	}
	x.res.OACK = map[string]string{}
	fields := strings.Split(string(body), "\x00")
	for i := 0; i+1 < len(fields); i += 2 {
		x.res.OACK[strings.ToLower(fields[i])] = fields[i+1]
	}
	var err error
	if v, ok := x.res.OACK["blksize"]; ok {
		if x.res.Blksize, err = strconv.Atoi(v); err != nil || x.res.Blksize < 8 || x.res.Blksize > 65464 {
			x.abort(8, "bad blksize")
			return true, fmt.Errorf("%w: blksize %q in OACK", ErrMismatch, v)
		}
	}
	if v, ok := x.res.OACK["windowsize"]; ok {
		if x.res.Window, err = strconv.Atoi(v); err != nil || x.res.Window < 1 {
			x.abort(8, "bad windowsize")
			return true, fmt.Errorf("%w: windowsize %q in OACK", ErrMismatch, v)
		}
	}
	if v, ok := x.res.OACK["tsize"]; ok {
		if x.tsize, err = strconv.Atoi(v); err != nil || x.tsize < 0 || (x.c.Buf != nil && x.tsize > len(x.c.Buf)) {
			x.abort(8, "bad tsize")
			return true, fmt.Errorf("%w: tsize %q in OACK", ErrMismatch, v)
		}
	}
	x.grow(x.res.Blksize)
	if x.c.AbortOnOACK {
		_, err := x.conn.WriteToUDPAddrPort(errorPacket(8, "no thanks"), x.tid)
		return true, err
	}
	if x.c.StallAfterOACK {
		x.res.Conn = x.conn
		return true, nil
	}
	x.tries = 0
	return false, x.sendAck(0)
}

// data takes one DATA packet: in order, it is kept and ACKed at the end of
// each window (RFC 7440); a repeat of the block before, sent because our
// ACK was lost, is ACKed again; a gap is answered once with an ACK of the
// last block in order, which restarts the server's window there.
func (x *transfer) data(block uint16, payload []byte) (bool, error) {
	x.res.DataPackets++
	if x.c.Drop != nil && x.c.Drop(x.expected, x.res.DataPackets) {
		return false, nil
	}
	x.tries = 0
	want := uint16(x.expected)
	if block != want {
		var err error
		switch {
		case block == want-1 && x.inWin == 0:
			err = x.sendAck(want - 1)
		case want-block > uint16(x.res.Window) && !x.nakSent:
			x.nakSent, x.inWin = true, 0
			err = x.sendAck(want - 1)
		}
		return err != nil, err
	}
	if !x.c.Discard {
		if x.c.Buf != nil && x.res.Size+len(payload) > len(x.c.Buf) {
			x.abort(3, "too large")
			return true, fmt.Errorf("%w: file larger than %d bytes", ErrMismatch, len(x.c.Buf))
		}
		x.res.Data = append(x.res.Data, payload...)
	}
	x.res.Size += len(payload)
	if x.c.OnData != nil {
		x.c.OnData(x.expected, payload)
	}
	x.expected++
	x.inWin++
	x.nakSent = false
	final := len(payload) < x.res.Blksize
	if final || x.inWin == x.res.Window {
		x.inWin = 0
		if x.c.Pace > 0 {
			time.Sleep(x.c.Pace)
		}
		if err := x.sendAck(want); err != nil {
			return true, err
		}
	}
	if !final {
		return false, nil
	}
	if x.tsize >= 0 && x.res.Size != x.tsize {
		return true, fmt.Errorf("%w: got %d bytes, tsize said %d", ErrMismatch, x.res.Size, x.tsize)
	}
	return true, nil
}
