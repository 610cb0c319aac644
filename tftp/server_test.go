package tftp

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/stagehand-dev/stagehand/tftp/tftptest"
)

// testServer runs srv on 127.0.0.1:0 until the test ends and returns its
// address. Cleanup cancels Serve and fails the test if it errs or hangs.
func testServer(t testing.TB, srv *Server) string {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if srv.DrainTimeout == 0 {
		// Tests that leave a client stalled would otherwise wait out the
		// default bound; TestShutdown* cover the drain itself.
		srv.DrainTimeout = 100 * time.Millisecond
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, conn) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return after cancel")
		}
	})
	return conn.LocalAddr().String()
}

// randomFile writes n random bytes to dir/name and returns them.
func randomFile(t testing.TB, dir, name string, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

func testLogger(t testing.TB) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel)
}

// transferLog collects OnTransfer reports.
type transferLog struct {
	mu sync.Mutex
	ts []Transfer
}

func (l *transferLog) add(tr Transfer) {
	l.mu.Lock()
	l.ts = append(l.ts, tr)
	l.mu.Unlock()
}

// wait returns the reports once n have arrived.
func (l *transferLog) wait(t *testing.T, n int) []Transfer {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l.mu.Lock()
		ts := append([]Transfer(nil), l.ts...)
		l.mu.Unlock()
		if len(ts) >= n {
			return ts
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d transfer reports, want %d", len(ts), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestTransferSizes(t *testing.T) {
	dir := t.TempDir()
	files := map[string][]byte{
		"odd.bin":   randomFile(t, dir, "odd.bin", 100_003),
		"exact.bin": randomFile(t, dir, "exact.bin", 8192*4), // multiple of every blksize below
		"empty.bin": randomFile(t, dir, "empty.bin", 0),
	}
	var log transferLog
	srv := &Server{Handler: Dir(dir), Log: testLogger(t), MaxBlockSize: 65464, OnTransfer: log.add}
	addr := testServer(t, srv)

	n := 0
	for _, blksize := range []int{0, 512, 1468, 8192} {
		for _, window := range []int{1, 4, 16} {
			for name, want := range files {
				t.Run(fmt.Sprintf("blksize=%d/window=%d/%s", blksize, window, name), func(t *testing.T) {
					opts := []tftptest.Option{{Name: "tsize", Value: "0"}}
					if blksize > 0 {
						opts = append(opts, tftptest.Option{Name: "blksize", Value: strconv.Itoa(blksize)})
					}
					if window > 1 {
						opts = append(opts, tftptest.Option{Name: "windowsize", Value: strconv.Itoa(window)})
					}
					c := &tftptest.Client{Options: opts}
					res, err := c.Get(addr, name)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(res.Data, want) {
						t.Fatalf("got %d bytes, want %d (content differs: %v)", len(res.Data), len(want), len(res.Data) == len(want))
					}
					if got := res.OACK["tsize"]; got != strconv.Itoa(len(want)) {
						t.Errorf("tsize = %q, want %d", got, len(want))
					}
					bs := max(blksize, 512)
					if got := res.OACK["blksize"]; blksize > 0 && got != strconv.Itoa(blksize) {
						t.Errorf("blksize = %q, want %d", got, blksize)
					}
					if wantPackets := len(want)/bs + 1; res.DataPackets != wantPackets {
						t.Errorf("received %d DATA packets, want %d", res.DataPackets, wantPackets)
					}
				})
				n++
			}
		}
	}
	reports := log.wait(t, n)
	for _, tr := range reports {
		if tr.Err != nil {
			t.Errorf("report for %s: %v", tr.File, tr.Err)
		}
	}
	st := srv.Stats()
	if st.TransfersOK != uint64(n) || st.Retransmits != 0 || st.TransfersFailed != 0 {
		t.Errorf("stats = %+v, want %d ok, no retransmits", st, n)
	}
}

// A plain RFC 1350 request gets no OACK and 512-byte blocks.
func TestTransferWithoutOptions(t *testing.T) {
	dir := t.TempDir()
	want := randomFile(t, dir, "f", 5000)
	addr := testServer(t, &Server{Handler: Dir(dir), Log: testLogger(t)})
	res, err := (&tftptest.Client{}).Get(addr, "/f")
	if err != nil {
		t.Fatal(err)
	}
	if res.OACK != nil || !bytes.Equal(res.Data, want) || res.DataPackets != 10 {
		t.Fatalf("oack=%v bytes=%d packets=%d", res.OACK, len(res.Data), res.DataPackets)
	}
}

// 65536*8+100 bytes at blksize 8 is 65549 blocks: the block number wraps
// from 65535 to 0 and the transfer carries on.
func TestBlockNumberRollover(t *testing.T) {
	dir := t.TempDir()
	want := randomFile(t, dir, "big", 65536*8+100)
	addr := testServer(t, &Server{Handler: Dir(dir), Log: testLogger(t)})
	windows := []int{64}
	if !testing.Short() {
		windows = append(windows, 1)
	}
	for _, w := range windows {
		t.Run("window="+strconv.Itoa(w), func(t *testing.T) {
			c := &tftptest.Client{Options: []tftptest.Option{{Name: "blksize", Value: "8"}, {Name: "windowsize", Value: strconv.Itoa(w)}}}
			res, err := c.Get(addr, "big")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(res.Data, want) {
				t.Fatalf("got %d bytes, want %d", len(res.Data), len(want))
			}
			if res.DataPackets != 65549 {
				t.Errorf("received %d DATA packets, want 65549", res.DataPackets)
			}
		})
	}
}

// Every ACK sent twice must not make the server send any DATA twice
// (Sorcerer's Apprentice, RFC 1123 4.2.3.1).
func TestDuplicateAckSendsNoDuplicateData(t *testing.T) {
	dir := t.TempDir()
	want := randomFile(t, dir, "f", 300_000)
	// A long timeout so no retransmission can hide in the count.
	srv := &Server{Handler: Dir(dir), Log: testLogger(t), Timeout: 10 * time.Second}
	addr := testServer(t, srv)
	for _, w := range []string{"1", "4"} {
		t.Run("window="+w, func(t *testing.T) {
			c := &tftptest.Client{Options: []tftptest.Option{{Name: "blksize", Value: "1468"}, {Name: "windowsize", Value: w}}, DupAcks: true}
			res, err := c.Get(addr, "f")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(res.Data, want) {
				t.Fatalf("got %d bytes, want %d", len(res.Data), len(want))
			}
			if wantPackets := len(want)/1468 + 1; res.DataPackets != wantPackets {
				t.Errorf("received %d DATA packets, want exactly %d", res.DataPackets, wantPackets)
			}
		})
	}
	if st := srv.Stats(); st.Retransmits != 0 {
		t.Errorf("retransmits = %d, want 0", st.Retransmits)
	}
}

func TestRetransmission(t *testing.T) {
	dir := t.TempDir()
	want := randomFile(t, dir, "f", 20_000)
	cases := []struct {
		name        string
		client      tftptest.Client
		wantPackets int // DATA packets the client sees, lost ones included
	}{
		// The first DATA is lost: the server resends it on its timer.
		{"first data lost", tftptest.Client{Drop: func(b int64, n int) bool { return n == 1 }}, 41},
		// The OACK is lost and the client does not repeat its RRQ in time:
		// the server's backstop resends the OACK after MaxIdle/2.
		{"oack lost", tftptest.Client{Options: []tftptest.Option{{Name: "blksize", Value: "1000"}}, DropOACK: 1}, 21},
		// Block 3 of a window of 8 is lost: the client ACKs block 2 when it
		// sees block 4, and the server restarts the window from block 3.
		{"window gap", tftptest.Client{
			Options: []tftptest.Option{{Name: "blksize", Value: "1000"}, {Name: "windowsize", Value: "8"}},
			Drop:    func(b int64, n int) bool { return n == 3 },
		}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// MaxIdle 2 s puts the OACK backstop at 1 s, before the test
			// client's own 5 s timer.
			srv := &Server{Handler: Dir(dir), Log: testLogger(t), Timeout: 200 * time.Millisecond, MaxIdle: 2 * time.Second}
			addr := testServer(t, srv)
			res, err := tc.client.Get(addr, "f")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(res.Data, want) {
				t.Fatalf("got %d bytes, want %d", len(res.Data), len(want))
			}
			if tc.wantPackets > 0 && res.DataPackets != tc.wantPackets {
				t.Errorf("received %d DATA packets, want %d", res.DataPackets, tc.wantPackets)
			}
			st := srv.Stats()
			if tc.wantPackets > 0 && st.Retransmits == 0 {
				t.Errorf("stats = %+v, want a retransmission", st)
			}
			if tc.wantPackets == 0 && res.DataPackets <= 21 {
				t.Errorf("received %d DATA packets, want the resent window on top of 21", res.DataPackets)
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	dir := t.TempDir()
	randomFile(t, dir, "ok", 10)
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("secret"), 0o600)
	if err := os.Symlink(secret, filepath.Join(dir, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../../../../etc/passwd", filepath.Join(dir, "sub", "up")); err != nil {
		t.Fatal(err)
	}
	var log transferLog
	srv := &Server{Handler: Dir(dir), Log: testLogger(t), OnTransfer: log.add}
	addr := testServer(t, srv)
	cases := []struct {
		file  string
		mode  string
		codes []errorCode
	}{
		{"../etc/passwd", "", []errorCode{errAccess}},
		{"sub/../../etc/passwd", "", []errorCode{errAccess}},
		{"/etc/passwd", "", []errorCode{errNotFound}}, // means <root>/etc/passwd
		{"escape", "", []errorCode{errAccess}},
		{"sub/up", "", []errorCode{errAccess}},
		{"missing", "", []errorCode{errNotFound}},
		{"sub", "", []errorCode{errNotFound}},
		{"ok", "netascii", []errorCode{errIllegalOp}},
		{"ok", "mail", []errorCode{errIllegalOp}},
	}
	for _, tc := range cases {
		t.Run(tc.file+"/"+tc.mode, func(t *testing.T) {
			res, err := (&tftptest.Client{Mode: tc.mode, Options: []tftptest.Option{{Name: "tsize", Value: "0"}}}).Get(addr, tc.file)
			var re *tftptest.RemoteError
			if !errors.As(err, &re) {
				t.Fatalf("got err %v, data %q; want a TFTP ERROR", err, res.Data)
			}
			if errorCode(re.Code) != tc.codes[0] {
				t.Errorf("error code %d (%s), want %d", errorCode(re.Code), re.Msg, tc.codes[0])
			}
			if len(res.Data) > 0 {
				t.Errorf("received data %q", res.Data)
			}
		})
	}
	reports := log.wait(t, len(cases))
	for _, tr := range reports {
		if tr.Err == nil {
			t.Errorf("%s: no error reported", tr.File)
		}
	}
	if st := srv.Stats(); st.TransfersFailed != uint64(len(cases)) || st.ErrorsSent != uint64(len(cases)) {
		t.Errorf("stats = %+v", st)
	}
}

func TestWriteRequestRefused(t *testing.T) {
	dir := t.TempDir()
	srv := &Server{Handler: Dir(dir), Log: testLogger(t)}
	addr := testServer(t, srv)
	code, _ := exchange(t, addr, appendRequest(nil, opWRQ, "new", "octet", nil))
	if code != errAccess {
		t.Fatalf("error code %d, want %d", code, errAccess)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("root now holds %v", entries)
	}
}

// exchange sends one datagram to addr and returns the ERROR code and
// message of the answer.
func exchange(t *testing.T, addr string, pkt []byte) (errorCode, string) {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(pkt)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 600)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	r, err := parseReply(buf[:n])
	if err != nil || r.op != opERROR {
		t.Fatalf("reply %x: %v", buf[:n], err)
	}
	return r.code, r.msg
}

// Garbage is dropped and counted, never answered, and the server goes on.
func TestBadPacketsDropped(t *testing.T) {
	dir := t.TempDir()
	want := randomFile(t, dir, "f", 1000)
	srv := &Server{Handler: Dir(dir), Log: testLogger(t)}
	addr := testServer(t, srv)
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	bad := [][]byte{
		{},
		{0},
		{0, 1},
		{0, 1, 'f'},
		{0, 3, 0, 1, 'x'}, // DATA to the request port
		{0, 4, 0, 1},      // ACK to the request port
		{0, 9, 'f', 0, 'o', 'c', 't', 'e', 't', 0},
		appendRequest(nil, opRRQ, string(bytes.Repeat([]byte("a"), 300)), "octet", []option{{"blksize", string(bytes.Repeat([]byte("1"), 250))}}),
	}
	for _, p := range bad {
		c.Write(p)
	}
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := c.Read(make([]byte, 600)); err == nil {
		t.Fatalf("got a %d-byte reply to garbage", n)
	}
	res, err := (&tftptest.Client{}).Get(addr, "f")
	if err != nil || !bytes.Equal(res.Data, want) {
		t.Fatalf("transfer after garbage: %v", err)
	}
	if st := srv.Stats(); st.BadPackets != uint64(len(bad)) {
		t.Errorf("bad packets = %d, want %d", st.BadPackets, len(bad))
	}
}

// An ERROR from the client ends the transfer with nothing more sent.
func TestClientErrorEndsTransfer(t *testing.T) {
	dir := t.TempDir()
	randomFile(t, dir, "f", 5000)
	var log transferLog
	srv := &Server{Handler: Dir(dir), Log: testLogger(t), OnTransfer: log.add}
	addr := testServer(t, srv)
	res, err := (&tftptest.Client{Options: []tftptest.Option{{Name: "tsize", Value: "0"}}, AbortOnOACK: true}).Get(addr, "f")
	if err != nil {
		t.Fatal(err)
	}
	if res.OACK["tsize"] != "5000" {
		t.Errorf("tsize = %q", res.OACK["tsize"])
	}
	tr := log.wait(t, 1)[0]
	if !errors.Is(tr.Err, ErrClientAbort) {
		t.Errorf("report err = %v, want ErrClientAbort", tr.Err)
	}
	st := srv.Stats()
	if st.TransfersAborted != 1 || st.Retransmits != 0 || st.ErrorsSent != 0 {
		t.Errorf("stats = %+v", st)
	}
}

// A request repeated before the first answer arrives starts one transfer.
func TestDuplicateRequest(t *testing.T) {
	dir := t.TempDir()
	randomFile(t, dir, "f", 5000)
	srv := &Server{Handler: Dir(dir), Log: testLogger(t), Timeout: 5 * time.Second}
	addr := testServer(t, srv)
	c, raddr := rawClient(t, addr)
	rrq := appendRequest(nil, opRRQ, "f", "octet", []option{{"tsize", "0"}})
	c.WriteToUDP(rrq, raddr)
	c.WriteToUDP(rrq, raddr)
	sources := map[string]int{}
	buf := make([]byte, 600)
	for {
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, from, err := c.ReadFromUDP(buf)
		if err != nil {
			break
		}
		sources[from.String()]++
	}
	if len(sources) != 1 {
		t.Errorf("answers came from %v, want one transfer", sources)
	}
	if st := srv.Stats(); st.DuplicateRRQs != 1 {
		t.Errorf("duplicate RRQs = %d, want 1", st.DuplicateRRQs)
	}
}

// session is a hand-driven transfer for the RRQ-classification tests.
type session struct {
	t     *testing.T
	c     *net.UDPConn
	srv   *net.UDPAddr
	tid   *net.UDPAddr // the transfer's address, from its first answer
	rrq   []byte
	buf   []byte
	data  []byte
	block uint16
}

// start sends the RRQ and takes the OACK; ack0 then sends ACK 0 and
// reads DATA 1, which proves the transfer has heard the client.
func (e *session) start() {
	e.t.Helper()
	e.c.WriteToUDP(e.rrq, e.srv)
	p, from := e.read(time.Second)
	if p == nil || p[1] != byte(opOACK) {
		e.t.Fatalf("no OACK after the RRQ: %v", p)
	}
	e.tid = from
}

// read returns the next packet and its source within d (nil on timeout).
func (e *session) read(d time.Duration) ([]byte, *net.UDPAddr) {
	e.c.SetReadDeadline(time.Now().Add(d))
	n, from, err := e.c.ReadFromUDP(e.buf)
	if err != nil {
		return nil, nil
	}
	return e.buf[:n], from
}

// ack acknowledges block b on the transfer and returns the next DATA,
// failing on a packet from any other TID.
func (e *session) ack(b uint16) []byte {
	e.t.Helper()
	e.c.WriteToUDP([]byte{0, byte(opACK), byte(b >> 8), byte(b)}, e.tid)
	p, from := e.read(time.Second)
	if p == nil {
		return nil
	}
	if from.String() != e.tid.String() {
		e.t.Fatalf("a packet from %s while the transfer is %s: a second transfer answered the same client port", from, e.tid)
	}
	return p
}

// finish acks DATA from block 1 to the end and returns the file's bytes.
func (e *session) finish(first []byte) []byte {
	e.t.Helper()
	p := first
	for b := uint16(1); ; b++ {
		if p == nil || p[1] != byte(opDATA) || uint16(p[2])<<8|uint16(p[3]) != b {
			e.t.Fatalf("want DATA %d, got %v", b, p)
		}
		e.data = append(e.data, p[4:]...)
		if len(p)-4 < 512 {
			e.c.WriteToUDP([]byte{0, byte(opACK), byte(b >> 8), byte(b)}, e.tid)
			return e.data
		}
		p = e.ack(b)
	}
}

// A copy of the RRQ read after the client already answered the transfer
// (the network duplicated it and a loaded read loop got to it late) is
// dropped: no second transfer answers the same client port (curl, given
// two, completed neither in CI). The same RRQ after the client fell
// silent for rrqGap is a new request, and so is a different one sent
// right after the client's ERROR (a PXE ROM's tsize probe, then the file):
// both are served.
func TestRepeatedRRQAfterClientAnswered(t *testing.T) {
	dir := t.TempDir()
	want := randomFile(t, dir, "f", 5000)
	var log transferLog
	srv := &Server{Handler: Dir(dir), Log: testLogger(t), Timeout: 5 * time.Second, OnTransfer: log.add}
	addr := testServer(t, srv)
	newSession := func() *session {
		c, raddr := rawClient(t, addr)
		return &session{t: t, c: c, srv: raddr, rrq: appendRequest(nil, opRRQ, "f", "octet", []option{{"tsize", "0"}}), buf: make([]byte, 600)}
	}

	t.Run("copy after ACK 0", func(t *testing.T) {
		e := newSession()
		e.t = t
		e.start()
		d1 := e.ack(0)
		e.c.WriteToUDP(e.rrq, e.srv) // the late copy
		if p, from := e.read(300 * time.Millisecond); p != nil {
			t.Fatalf("the copied RRQ was answered by %s: % x", from, p[:min(len(p), 8)])
		}
		if got := e.finish(d1); !bytes.Equal(got, want) {
			t.Fatalf("got %d bytes, want %d identical", len(got), len(want))
		}
		tr := log.wait(t, 1)
		if len(tr) != 1 || tr[0].Err != nil || tr[0].Bytes != int64(len(want)) {
			t.Fatalf("transfers %+v, want one complete", tr)
		}
		if st := srv.Stats(); st.DuplicateRRQs != 1 {
			t.Errorf("duplicate RRQs = %d, want 1", st.DuplicateRRQs)
		}
	})

	t.Run("same RRQ after silence", func(t *testing.T) {
		e := newSession()
		e.t = t
		e.start()
		e.ack(0)
		first := e.tid
		time.Sleep(rrqGap + 100*time.Millisecond)
		e.start()
		if e.tid.String() == first.String() {
			t.Fatalf("the new request was answered by the stalled transfer %s", first)
		}
		e.c.WriteToUDP(appendError(nil, errUndefined, "done"), e.tid)
		e.c.WriteToUDP(appendError(nil, errUndefined, "done"), first)
	})

	t.Run("tsize probe, ERROR, then the file from the same port", func(t *testing.T) {
		e := newSession()
		e.t = t
		e.start()
		e.c.WriteToUDP(appendError(nil, errUndefined, "tsize probe done"), e.tid)
		first := e.tid
		e.rrq = appendRequest(nil, opRRQ, "f", "octet", []option{{"blksize", "512"}, {"tsize", "0"}})
		e.start()
		if e.tid.String() == first.String() {
			t.Fatalf("the new request was answered by the ended transfer %s", first)
		}
		if got := e.finish(e.ack(0)); !bytes.Equal(got, want) {
			t.Fatalf("got %d bytes, want %d identical", len(got), len(want))
		}
	})
}

func TestConcurrencyCap(t *testing.T) {
	dir := t.TempDir()
	want := randomFile(t, dir, "f", 3000)
	var log transferLog
	srv := &Server{Handler: Dir(dir), Log: testLogger(t), MaxTransfers: 1, Timeout: 5 * time.Second, OnTransfer: log.add}
	addr := testServer(t, srv)

	held := holdAnswered(t, srv, addr, nil)
	_, err := (&tftptest.Client{}).Get(addr, "f")
	var re *tftptest.RemoteError
	if !errors.As(err, &re) || errorCode(re.Code) != errUndefined {
		t.Fatalf("second transfer: %v, want ERROR 0 busy", err)
	}
	if tr := log.wait(t, 1)[0]; !errors.Is(tr.Err, ErrBusy) {
		t.Errorf("report err = %v, want ErrBusy", tr.Err)
	}
	if st := srv.Stats(); st.Active != 1 {
		t.Errorf("active = %d, want 1", st.Active)
	}
	// Release the slot: the held client gives up with an ERROR.
	held.Conn.WriteToUDP(appendError(nil, errUndefined, "bye"), held.Server)
	held.Conn.Close()
	log.wait(t, 2)
	res, err := (&tftptest.Client{}).Get(addr, "f")
	if err != nil || !bytes.Equal(res.Data, want) {
		t.Fatalf("transfer after the slot freed: %v", err)
	}
}

// One address cannot take more than MaxPerClient transfers, so a client
// that requests and never ACKs cannot lock others out; other addresses
// are still served, and a freed slot serves the address again.
func TestPerClientCap(t *testing.T) {
	dir := t.TempDir()
	want := randomFile(t, dir, "f", 3000)
	var log transferLog
	srv := &Server{Handler: Dir(dir), Log: testLogger(t), MaxTransfers: 10, MaxPerClient: 2, Timeout: 5 * time.Second, OnTransfer: log.add}
	addr := testServer(t, srv)

	var held []*tftptest.Result
	for range 2 {
		held = append(held, holdAnswered(t, srv, addr, nil))
	}
	_, err := (&tftptest.Client{}).Get(addr, "f")
	var re *tftptest.RemoteError
	if !errors.As(err, &re) || errorCode(re.Code) != errUndefined || !strings.Contains(re.Msg, "your address") {
		t.Fatalf("third transfer from 127.0.0.1: %v, want ERROR 0 too many from your address", err)
	}
	// Another address is served while 127.0.0.1 is at its cap.
	res, err := (&tftptest.Client{Local: net.IPv4(127, 0, 0, 2)}).Get(addr, "f")
	if err != nil || !bytes.Equal(res.Data, want) {
		t.Fatalf("transfer from 127.0.0.2: %v", err)
	}
	// The server counts that transfer once our last ACK arrives. It is
	// the only report: a per-address refusal is not passed to OnTransfer
	// (a flood would otherwise flood the inventory's events).
	if ts := log.wait(t, 1); len(ts) != 1 || ts[0].Err != nil || ts[0].Remote.(*net.UDPAddr).IP.String() != "127.0.0.2" {
		t.Errorf("reports = %+v, want one: the transfer to 127.0.0.2", ts)
	}
	if st := srv.Stats(); st.RefusedPerClient != 1 || st.RefusedBusy != 0 || st.Active != 2 || st.TransfersFailed != 0 {
		t.Errorf("stats = %+v, want 1 refused per client, 0 busy, 2 active, 0 failed", st)
	}
	// Free one slot: 127.0.0.1 is served again.
	held[0].Conn.WriteToUDP(appendError(nil, errUndefined, "bye"), held[0].Server)
	held[0].Conn.Close()
	log.wait(t, 2)
	res, err = (&tftptest.Client{}).Get(addr, "f")
	if err != nil || !bytes.Equal(res.Data, want) {
		t.Fatalf("transfer after the slot freed: %v", err)
	}
	held[1].Conn.Close()
}

// A run of refused requests is one warning in the log, not one line
// each: each refusal is still answered with an ERROR and counted, and a
// busy refusal still reaches OnTransfer.
func TestRefusalsWarnOnce(t *testing.T) {
	dir := t.TempDir()
	randomFile(t, dir, "f", 3000)
	var out bytes.Buffer
	var mu sync.Mutex
	w := zerolog.SyncWriter(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return out.Write(p)
	}))
	var log transferLog
	srv := &Server{Handler: Dir(dir), Log: zerolog.New(w).Level(zerolog.InfoLevel), MaxTransfers: 1, Timeout: 5 * time.Second, OnTransfer: log.add}
	addr := testServer(t, srv)
	held := holdAnswered(t, srv, addr, nil)
	defer held.Conn.Close()
	const n = 30
	for i := range n {
		c, raddr := rawClient(t, addr)
		c.WriteToUDP(appendRequest(nil, opRRQ, "f", "octet", nil), raddr)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 100)
		m, _, err := c.ReadFromUDP(buf)
		if err != nil || m < 4 || buf[1] != byte(opERROR) {
			t.Fatalf("request %d: %q, %v; want ERROR busy", i, buf[:max(m, 0)], err)
		}
	}
	if st := srv.Stats(); st.RefusedBusy != n {
		t.Errorf("refused busy = %d, want %d", st.RefusedBusy, n)
	}
	if got := len(log.wait(t, n)); got != n {
		t.Errorf("%d OnTransfer reports, want %d", got, n)
	}
	mu.Lock()
	logged := out.String()
	mu.Unlock()
	if c := strings.Count(logged, "refusing requests"); c != 1 || strings.Count(logged, "\n") != 1 {
		t.Errorf("log has %d refusal warnings in %d lines, want 1 line:\n%s", c, strings.Count(logged, "\n"), logged)
	}
}

// holdAnswered starts a transfer of f from local (nil: 127.0.0.1) that
// holds its slot as a client that answered: ACK 0 sent, DATA 1 left
// unacknowledged. Close Result.Conn to let the server time it out, or send
// it ERROR to free the slot.
func holdAnswered(t *testing.T, srv *Server, addr string, local net.IP) *tftptest.Result {
	t.Helper()
	c := &tftptest.Client{Local: local, Options: []tftptest.Option{{Name: "tsize", Value: "0"}}, StallAfterOACK: true}
	held, err := c.Get(addr, "f")
	if err != nil {
		t.Fatal(err)
	}
	before := srv.Stats().Pending
	if _, err := held.Conn.WriteToUDP(appendAck(nil, 0), held.Server); err != nil {
		t.Fatal(err)
	}
	held.Conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 600)
	if n, _, err := held.Conn.ReadFromUDP(buf); err != nil || n < 4 || buf[1] != byte(opDATA) {
		t.Fatalf("held transfer: DATA 1 after ACK 0: %q, %v", buf[:max(n, 0)], err)
	}
	if st := srv.Stats(); st.Pending != before-1 {
		t.Fatalf("held transfer still pending once DATA 1 came: %+v", st)
	}
	return held
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// Cancelling Serve ends transfers that outlive the drain bound with an
// ERROR, returns nil and leaves no goroutine behind.
func TestShutdown(t *testing.T) {
	for _, tc := range []struct {
		name  string
		drain time.Duration
	}{
		{"drain bound", 200 * time.Millisecond},
		{"no drain", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			randomFile(t, dir, "f", 3000)
			before := runtime.NumGoroutine()

			srv := &Server{Handler: Dir(dir), Log: testLogger(t), Timeout: 30 * time.Second, DrainTimeout: tc.drain}
			conn, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- srv.Serve(ctx, conn) }()

			var held []*tftptest.Result
			for range 3 {
				r, err := (&tftptest.Client{Options: []tftptest.Option{{Name: "tsize", Value: "0"}}, StallAfterOACK: true}).Get(conn.LocalAddr().String(), "f")
				if err != nil {
					t.Fatal(err)
				}
				defer r.Conn.Close()
				held = append(held, r)
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Serve returned %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Serve did not return")
			}
			for i, r := range held {
				r.Conn.SetReadDeadline(time.Now().Add(2 * time.Second))
				buf := make([]byte, 600)
				n, _, err := r.Conn.ReadFromUDP(buf)
				if err != nil {
					t.Fatalf("client %d: %v", i, err)
				}
				if rep, _ := parseReply(buf[:n]); rep.op != opERROR || rep.msg != "server shutting down" {
					t.Errorf("client %d got %x, want ERROR server shutting down", i, buf[:n])
				}
			}
			if _, err := conn.WriteTo([]byte{0, 1}, conn.LocalAddr()); err == nil {
				t.Error("listening socket still open")
			}
			waitGoroutines(t, before)
			if st := srv.Stats(); st.TransfersFailed != 3 || st.Active != 0 {
				t.Errorf("stats = %+v", st)
			}
		})
	}
}

// waitGoroutines fails the test unless the goroutine count falls back to
// before within a few seconds.
func waitGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Cancelling Serve mid-transfer lets the transfer finish byte for byte
// within the drain bound, while a new request finds the port closed.
func TestShutdownDrainsTransfers(t *testing.T) {
	dir := t.TempDir()
	want := randomFile(t, dir, "f", 200*512+100)
	before := runtime.NumGoroutine()

	var log transferLog
	srv := &Server{Handler: Dir(dir), Log: testLogger(t), OnTransfer: log.add}
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := conn.LocalAddr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, conn) }()

	// Two lock-step clients (with and without options) at about 200
	// blocks per second: each is in flight for about a second.
	type result struct {
		res *tftptest.Result
		err error
	}
	mid := make(chan struct{}, 2)
	results := make(chan result, 2)
	for _, opts := range [][]tftptest.Option{nil, {{Name: "tsize", Value: "0"}, {Name: "blksize", Value: "512"}}} {
		c := &tftptest.Client{Options: opts, Pace: 5 * time.Millisecond, OnData: func(n int64, _ []byte) {
			if n == 20 {
				mid <- struct{}{}
			}
		}}
		go func() {
			r, err := c.Get(addr, "f")
			results <- result{r, err}
		}()
	}
	<-mid
	<-mid
	cancel()

	// The listening socket closes at once: a new request is refused.
	late, err := (&tftptest.Client{Timeout: 200 * time.Millisecond, Retries: 1}).Get(addr, "f")
	if err == nil || len(late.Data) > 0 {
		t.Errorf("request after cancel: %d bytes, err %v; want refused", len(late.Data), err)
	}

	for range 2 {
		r := <-results
		if r.err != nil || !bytes.Equal(r.res.Data, want) {
			var n int
			if r.res != nil {
				n = len(r.res.Data)
			}
			t.Errorf("transfer in flight at cancel: %d of %d bytes, err %v", n, len(want), r.err)
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve returned %v", err)
		}
	case <-time.After(DefaultDrainTimeout + 5*time.Second):
		t.Fatal("Serve did not return")
	}
	for _, tr := range log.wait(t, 2) {
		if tr.Err != nil || tr.Bytes != int64(len(want)) {
			t.Errorf("report = %+v", tr)
		}
	}
	if st := srv.Stats(); st.TransfersOK != 2 || st.TransfersFailed != 0 || st.Active != 0 || st.ErrorsSent != 0 {
		t.Errorf("stats = %+v", st)
	}
	waitGoroutines(t, before)
}

func TestOnTransferReport(t *testing.T) {
	dir := t.TempDir()
	want := randomFile(t, dir, "f", 4000)
	var log transferLog
	addr := testServer(t, &Server{Handler: Dir(dir), Log: testLogger(t), OnTransfer: log.add})
	if _, err := (&tftptest.Client{Options: []tftptest.Option{{Name: "blksize", Value: "9000"}, {Name: "windowsize", Value: "500"}}}).Get(addr, "f"); err != nil {
		t.Fatal(err)
	}
	tr := log.wait(t, 1)[0]
	if tr.Err != nil || tr.File != "f" || tr.Bytes != int64(len(want)) || tr.BlockSize != 1468 ||
		tr.WindowSize != 64 || tr.Duration <= 0 || tr.Remote == nil {
		t.Errorf("report = %+v", tr)
	}
}

// A Handler other than Dir: any io.ReaderAt works, and its errors map to
// TFTP codes without leaking their text.
func TestHandlerFunc(t *testing.T) {
	payload := []byte("#!ipxe\nchain http://192.0.2.1/boot.ipxe\n")
	h := HandlerFunc(func(name string, remote net.Addr) (File, int64, error) {
		switch name {
		case "boot.ipxe":
			return nopCloser{bytes.NewReader(payload)}, int64(len(payload)), nil
		case "denied":
			return nil, 0, fmt.Errorf("policy says no to %s: %w", remote, os.ErrPermission)
		default:
			return nil, 0, errors.New("database exploded at /var/lib/secret")
		}
	})
	addr := testServer(t, &Server{Handler: h, Log: testLogger(t)})
	res, err := (&tftptest.Client{}).Get(addr, "boot.ipxe")
	if err != nil || !bytes.Equal(res.Data, payload) {
		t.Fatalf("got %q, %v", res.Data, err)
	}
	for file, code := range map[string]errorCode{"denied": errAccess, "other": errUndefined} {
		_, err := (&tftptest.Client{}).Get(addr, file)
		var re *tftptest.RemoteError
		if !errors.As(err, &re) || errorCode(re.Code) != code || bytes.Contains([]byte(re.Msg), []byte("secret")) {
			t.Errorf("%s: %v, want code %d and a generic message", file, err, code)
		}
	}
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

// A socket error other than cancellation ends Serve with that error, and
// transfers in flight are ended rather than left running.
func TestServeSocketError(t *testing.T) {
	dir := t.TempDir()
	randomFile(t, dir, "f", 3000)
	srv := &Server{Handler: Dir(dir), Log: testLogger(t), Timeout: 30 * time.Second}
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), conn) }()
	held, err := (&tftptest.Client{Options: []tftptest.Option{{Name: "tsize", Value: "0"}}, StallAfterOACK: true}).Get(conn.LocalAddr().String(), "f")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Conn.Close()
	conn.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Serve returned %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	if st := srv.Stats(); st.Active != 0 || st.TransfersFailed != 1 {
		t.Errorf("stats = %+v", st)
	}
}

// rawClient opens a loopback UDP socket for a test that speaks TFTP by
// hand to the server at addr, closed when the test ends.
func rawClient(t *testing.T, addr string) (*net.UDPConn, *net.UDPAddr) {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return c, raddr
}
