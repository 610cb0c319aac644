package tftp

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/tftp/tftptest"
)

// stall requests f from a new port of 127.0.0.1 and never answers the
// OACK: a pending transfer, as a flood makes them.
func stall(t *testing.T, addr string) *tftptest.Result {
	t.Helper()
	r, err := (&tftptest.Client{Options: []tftptest.Option{{Name: "tsize", Value: "0"}}, StallAfterOACK: true}).Get(addr, "f")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Conn.Close() })
	return r
}

// waitStats polls srv's counters until ok holds, for up to 5 s.
func waitStats(t *testing.T, srv *Server, what string, ok func(Stats) bool) Stats {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		st := srv.Stats()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: stats %+v", what, st)
		}
	}
}

// With every pending slot taken by clients that never answer, a new
// request takes the oldest one's slot and is served; the displaced
// client's repeated request, from the same port, starts a new transfer
// (a client whose first answer was lost is served again).
func TestPendingYieldsToNewRequest(t *testing.T) {
	dir := t.TempDir()
	want := randomFile(t, dir, "f", 3000)
	var log transferLog
	srv := &Server{Handler: Dir(dir), Log: testLogger(t), MaxPending: 2, Timeout: 5 * time.Second, OnTransfer: log.add}
	addr := testServer(t, srv)
	oldest := stall(t, addr)
	stall(t, addr)
	time.Sleep(answerGrace)

	res, err := (&tftptest.Client{}).Get(addr, "f")
	if err != nil || !bytes.Equal(res.Data, want) {
		t.Fatalf("request over the pending cap: %v", err)
	}
	st := waitStats(t, srv, "one evicted, one still pending", func(st Stats) bool {
		return st.Evicted == 1 && st.Pending == 1 && st.Active == 1 && st.TransfersOK == 1
	})
	if st.PeakPending != 2 || st.PeakActive != 2 || st.TransfersFailed != 0 || st.Unanswered != 0 {
		t.Errorf("stats %+v: want peak 2 pending, 2 active, nothing failed or abandoned", st)
	}
	// Only the served transfer is reported: a displaced one is counted,
	// not passed on (a flood would flood the inventory's events).
	if ts := log.wait(t, 1); len(ts) != 1 || ts[0].Err != nil {
		t.Errorf("reports %+v, want the served transfer only", ts)
	}

	// The displaced client asks again from the same port: a new
	// transfer, a new TID, which it can finish.
	rrq := appendRequest(nil, opRRQ, "f", "octet", []option{{"tsize", "0"}})
	oldest.Conn.WriteToUDP(rrq, udpAddr(t, addr))
	oldest.Conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 600)
	n, tid, err := oldest.Conn.ReadFromUDP(buf)
	if err != nil || n < 2 || buf[1] != byte(opOACK) || tid.Port == oldest.Server.Port {
		t.Fatalf("repeated request of the displaced client: %q from %v, %v; want an OACK from a new TID", buf[:max(n, 0)], tid, err)
	}
	if st := srv.Stats(); st.Evicted != 1 || st.Pending != 2 {
		t.Errorf("stats %+v: want 1 evicted, 2 pending (the other stalled one and the new transfer)", st)
	}
}

// A transfer whose client answered is never displaced: with every slot
// held by clients that answered, a new request is refused as busy.
func TestAnsweredTransfersKeepTheirSlots(t *testing.T) {
	dir := t.TempDir()
	randomFile(t, dir, "f", 3000)
	srv := &Server{Handler: Dir(dir), Log: testLogger(t), MaxTransfers: 2, MaxPending: 2, Timeout: 5 * time.Second}
	addr := testServer(t, srv)
	holdAnswered(t, srv, addr, nil)
	stall(t, addr)
	time.Sleep(answerGrace)

	// The pending one gives way...
	if _, err := (&tftptest.Client{StallAfterOACK: true, Options: []tftptest.Option{{Name: "tsize", Value: "0"}}}).Get(addr, "f"); err != nil {
		t.Fatalf("request over MaxTransfers with one pending: %v", err)
	}
	waitStats(t, srv, "the pending one evicted", func(st Stats) bool { return st.Evicted == 1 && st.Active == 2 })
	// ... and once all are answered, the next is refused.
	srv2 := &Server{Handler: Dir(dir), Log: testLogger(t), MaxTransfers: 1, Timeout: 5 * time.Second}
	addr2 := testServer(t, srv2)
	holdAnswered(t, srv2, addr2, nil)
	time.Sleep(answerGrace)
	_, err := (&tftptest.Client{}).Get(addr2, "f")
	var re *tftptest.RemoteError
	if !errors.As(err, &re) || errorCode(re.Code) != errUndefined {
		t.Fatalf("request with every slot answered: %v, want ERROR busy", err)
	}
	if st := srv2.Stats(); st.RefusedBusy != 1 || st.Evicted != 0 || st.Active != 1 {
		t.Errorf("stats %+v, want 1 refused busy, none evicted, 1 active", st)
	}
}

// A request finding every pending slot taken by transfers younger than
// answerGrace is dropped without an answer (a burst faster than clients
// can answer must not displace them all), and counted.
func TestPendingFullDropsUnanswered(t *testing.T) {
	dir := t.TempDir()
	randomFile(t, dir, "f", 3000)
	srv := &Server{Handler: Dir(dir), Log: testLogger(t), MaxPending: 1, Timeout: 5 * time.Second}
	addr := testServer(t, srv)
	stall(t, addr)
	c, raddr := rawClient(t, addr)
	c.WriteToUDP(appendRequest(nil, opRRQ, "f", "octet", nil), raddr)
	waitStats(t, srv, "one dropped", func(st Stats) bool { return st.RefusedPending == 1 })
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, from, err := c.ReadFromUDP(make([]byte, 600)); err == nil {
		t.Fatalf("dropped request answered: %d bytes from %v", n, from)
	}
	if st := srv.Stats(); st.Pending != 1 || st.Evicted != 0 || st.RefusedBusy != 0 {
		t.Errorf("stats %+v, want the first still pending, nothing evicted or refused busy", st)
	}
}

// Once half the pending slots are in use, a pending transfer older than
// PendingTimeout gives back its slot at the next request, until fewer
// than half are in use; below half, it keeps its whole retry budget (a
// lossy client's first answer may be late).
func TestPendingTimeoutUnderPressure(t *testing.T) {
	dir := t.TempDir()
	want := randomFile(t, dir, "f", 3000)
	for _, tc := range []struct {
		name                string
		maxPending, stalled int
		abandoned           uint64
	}{
		{"three of four pending", 4, 3, 2},
		{"two of eight pending", 8, 2, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := &Server{Handler: Dir(dir), Log: testLogger(t), MaxPending: tc.maxPending, PendingTimeout: 200 * time.Millisecond, Timeout: 5 * time.Second}
			addr := testServer(t, srv)
			for range tc.stalled {
				stall(t, addr)
			}
			time.Sleep(300 * time.Millisecond)
			res, err := (&tftptest.Client{}).Get(addr, "f")
			if err != nil || !bytes.Equal(res.Data, want) {
				t.Fatalf("request after the timeout: %v", err)
			}
			st := waitStats(t, srv, "served", func(st Stats) bool { return st.TransfersOK == 1 })
			left := int64(tc.stalled) - int64(tc.abandoned)
			if st.Unanswered != tc.abandoned || st.Pending != left || st.Evicted != 0 {
				t.Errorf("stats %+v: want %d abandoned, %d pending, none evicted", st, tc.abandoned, left)
			}
		})
	}
}

func udpAddr(t *testing.T, addr string) *net.UDPAddr {
	t.Helper()
	a, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// answerQueued sees a datagram waiting unread on a socket, without
// taking it, and nothing on an empty one.
func TestAnswerQueued(t *testing.T) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if answerQueued(c) {
		t.Fatal("empty socket: answer queued")
	}
	from, raddr := rawClient(t, c.LocalAddr().String())
	from.WriteToUDP(appendAck(nil, 0), raddr)
	waitFor := time.Now().Add(5 * time.Second)
	for !answerQueued(c) {
		if time.Now().After(waitFor) {
			t.Fatal("datagram sent, none seen queued")
		}
		time.Sleep(time.Millisecond)
	}
	c.SetReadDeadline(time.Now().Add(time.Second))
	if n, _, err := c.ReadFromUDP(make([]byte, 16)); err != nil || n != 4 || answerQueued(c) {
		t.Fatalf("read after the peek: %d bytes, %v; want the whole ACK, then nothing queued", n, err)
	}
}

// The pending slots are shared out between client addresses: with every
// one taken by one address's requests, all younger than answerGrace, a
// request from another address displaces one of them at once and is
// served; while the flooding address holds more than its share, its
// further requests displace its own, never the other address's.
func TestPendingSharedBetweenAddresses(t *testing.T) {
	dir := t.TempDir()
	want := randomFile(t, dir, "f", 3000)
	srv := &Server{Handler: Dir(dir), Log: testLogger(t), MaxPending: 4, PendingTimeout: time.Minute, Timeout: 5 * time.Second}
	addr := testServer(t, srv)
	flood := func() *tftptest.Result {
		t.Helper()
		r, err := (&tftptest.Client{Local: net.IPv4(127, 0, 0, 1), StallAfterOACK: true,
			Options: []tftptest.Option{{Name: "tsize", Value: "0"}}}).Get(addr, "f")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Conn.Close() })
		return r
	}
	for range 4 {
		flood()
	}
	// Another address that waits before answering its OACK, as a host
	// under emulation may: it keeps its slot while the flood goes on.
	slow, err := (&tftptest.Client{Local: net.IPv4(127, 0, 0, 2), StallAfterOACK: true,
		Options: []tftptest.Option{{Name: "tsize", Value: "0"}}}).Get(addr, "f")
	if err != nil {
		t.Fatalf("a request from another address with the pending slots full of young ones: %v", err)
	}
	defer slow.Conn.Close()
	st := waitStats(t, srv, "one of the flood's displaced", func(st Stats) bool { return st.Evicted == 1 && st.Pending == 4 })
	if st.RefusedPending != 0 {
		t.Fatalf("stats %+v: the other address's request was dropped", st)
	}
	time.Sleep(answerGrace) // past the grace, the flood's requests go on
	for range 6 {
		flood()
	}
	waitStats(t, srv, "the flood displaced its own", func(st Stats) bool { return st.Evicted == 7 && st.Pending == 4 })
	// The slow host answers now, on the TID it locked onto, and its
	// transfer goes on: DATA 1 comes back.
	slow.Conn.WriteToUDP([]byte{0, byte(opACK), 0, 0}, slow.Server)
	slow.Conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 600)
	n, from, err := slow.Conn.ReadFromUDP(buf)
	if err != nil || n < 4 || buf[1] != byte(opDATA) || buf[3] != 1 || from.Port != slow.Server.Port || !bytes.Equal(buf[4:n], want[:n-4]) {
		t.Fatalf("the other address's transfer after the flood went on: %q from %v, %v; want DATA 1 from its TID", buf[:max(n, 0)], from, err)
	}
}

// victim, over synthetic pending transfers: who may take whose slot.
func TestVictim(t *testing.T) {
	now := time.Now()
	sock, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	ip := func(last byte) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 9, last}) }
	// pending builds a queue of transfers from the addresses given, in
	// age order; young ones were sent within answerGrace.
	type tr struct {
		from  byte
		young bool
	}
	pending := func(ts ...tr) (*pendingQueue, []*transfer) {
		q := &pendingQueue{}
		var all []*transfer
		for i, x := range ts {
			v := &transfer{key: netip.AddrPortFrom(ip(x.from), uint16(1000+i)), conn: sock}
			sent := now.Add(-time.Second)
			if x.young {
				sent = now
			}
			v.sentAt.Store(sent.UnixNano())
			q.push(v)
			all = append(all, v)
		}
		return q, all
	}
	// Fair share: an address holding more than the newcomer gives way at
	// once, the heaviest first; equal shares only past answerGrace.
	q, all := pending(tr{1, true}, tr{2, true}, tr{2, true}, tr{3, true})
	if v := q.victim(ip(4), now); v != all[1] {
		t.Errorf("a fresh address among young transfers: victim %v, want the oldest of the address holding two", v)
	}
	if v := q.victim(ip(2), now); v != nil {
		t.Errorf("the address holding two asks again among young transfers: victim %v, want none", v)
	}
	q, all = pending(tr{1, false}, tr{2, true})
	if v := q.victim(ip(3), now); v != all[0] {
		t.Errorf("equal shares: victim %v, want the one past its grace", v)
	}
	// Silence: once an address's transfers went unanswered, a request from
	// any other address displaces its young ones at once, and its own
	// requests displace nobody else's.
	q, all = pending(tr{5, false}, tr{1, true}, tr{2, true})
	q.unanswered(ip(1), now)
	q.unanswered(ip(2), now)
	if v := q.victim(ip(7), now); v != all[1] {
		t.Errorf("a host among a flood's young transfers: victim %v, want the flood's oldest", v)
	}
	if v := q.victim(ip(1), now); v != nil {
		t.Errorf("a flood address asks again: victim %v, want none (the host's transfer past grace is not the flood's to take)", v)
	}
	if q.unanswered(ip(1), now.Add(-2*silentFor)); q.isSilent(ip(1), now) {
		t.Errorf("silence older than silentFor still counts")
	}
}
