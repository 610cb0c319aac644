package tftp

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/tftp/tftptest"
)

func TestRetryPolicy(t *testing.T) {
	pol := retryPolicy{timeout: time.Second, minRetries: 5, maxIdle: 30 * time.Second}
	giveUp := []struct {
		name  string
		idle  time.Duration
		tries int
		want  bool
	}{
		{"first expiry", time.Second, 1, false},
		// The old policy gave up here: 5 resends at 1 s, at 20 % loss
		// each way a routine run of lost ACKs.
		{"six expiries, 6 s idle", 6 * time.Second, 6, false},
		{"29 s idle", 29 * time.Second, 29, false},
		{"30 s idle", 30 * time.Second, 30, true},
		{"31 s idle", 31 * time.Second, 31, true},
		// A client that asked for a long timeout still gets minRetries
		// resends, however long they take.
		{"long timeout, few resends", 60 * time.Second, 2, false},
		{"long timeout, enough resends", 6 * time.Minute, 6, true},
		{"resends done, idle short", 10 * time.Second, 10, false},
	}
	for _, tc := range giveUp {
		if got := pol.giveUp(tc.idle, tc.tries); got != tc.want {
			t.Errorf("giveUp %s (idle %v, tries %d) = %v, want %v", tc.name, tc.idle, tc.tries, got, tc.want)
		}
	}

	oack := []struct {
		pol   retryPolicy
		since time.Duration
		want  bool
	}{
		{pol, time.Second, false},
		{pol, 5 * time.Second, false}, // atftp's default timer: its ACK 0 comes first
		{pol, 14 * time.Second, false},
		{pol, 15 * time.Second, true}, // half the idle budget
		{retryPolicy{timeout: time.Minute, minRetries: 5, maxIdle: 30 * time.Second}, 20 * time.Second, false},
		{retryPolicy{timeout: time.Minute, minRetries: 5, maxIdle: 30 * time.Second}, time.Minute, true},
	}
	for _, tc := range oack {
		if got := tc.pol.oackResend(tc.since); got != tc.want {
			t.Errorf("oackResend(%v) with %+v = %v, want %v", tc.since, tc.pol, got, tc.want)
		}
	}

	waits := []struct {
		pol   retryPolicy
		tries int
		want  time.Duration
	}{
		{pol, 0, time.Second},
		{pol, 1, time.Second},
		{pol, 2, time.Second},
		{pol, 3, 2 * time.Second},
		{pol, 4, 4 * time.Second},
		{pol, 5, 8 * time.Second}, // longer than atftp's 5 s timer
		{pol, 50, 8 * time.Second},
		// A client's long RFC 2349 timeout is never shortened.
		{retryPolicy{timeout: 20 * time.Second}, 0, 20 * time.Second},
		{retryPolicy{timeout: 20 * time.Second}, 9, 20 * time.Second},
		{retryPolicy{timeout: 3 * time.Second}, 4, 8 * time.Second},
		{retryPolicy{timeout: 50 * time.Millisecond}, 5, 400 * time.Millisecond},
	}
	for _, tc := range waits {
		if got := tc.pol.wait(tc.tries); got != tc.want {
			t.Errorf("wait(%d) with timeout %v = %v, want %v", tc.tries, tc.pol.timeout, got, tc.want)
		}
	}
	// The documented worst case: a dead client is dropped 33 s after its
	// last ACK with the defaults.
	var at time.Duration
	for tries := 0; ; tries++ {
		at += pol.wait(tries)
		if pol.giveUp(at, tries+1) {
			break
		}
	}
	if at != 33*time.Second {
		t.Errorf("a dead client is abandoned after %v, want the documented 33 s", at)
	}

	rrq := []struct {
		since time.Duration
		want  bool
	}{
		{0, false},                      // duplicated in the network
		{30 * time.Millisecond, false},  // duplicated, then delayed
		{499 * time.Millisecond, false}, // still sooner than any client timer
		{500 * time.Millisecond, true},
		{5 * time.Second, true}, // the client's own retransmission
	}
	for _, tc := range rrq {
		if got := answerRRQ(tc.since); got != tc.want {
			t.Errorf("answerRRQ(%v) = %v, want %v", tc.since, got, tc.want)
		}
	}
}

// A client whose ACKs stay lost for more than Retries timer periods, but
// less than MaxIdle, still gets the whole file: the count of resends is
// not what ends a transfer.
func TestSlowClientOutlastsRetries(t *testing.T) {
	dir := t.TempDir()
	want := randomFile(t, dir, "f", 5000)
	var log transferLog
	srv := &Server{Handler: Dir(dir), Log: testLogger(t), Timeout: 50 * time.Millisecond, Retries: 2, MaxIdle: 5 * time.Second, OnTransfer: log.add}
	addr := testServer(t, srv)
	// Block 3 is "lost" 6 times in a row: 6 expiries, well past Retries.
	c := &tftptest.Client{Drop: func(b int64, n int) bool { return b == 3 && n <= 8 }}
	res, err := c.Get(addr, "f")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(res.Data, want) {
		t.Fatalf("got %d bytes, want %d", len(res.Data), len(want))
	}
	tr := log.wait(t, 1)[0]
	if tr.Err != nil {
		t.Errorf("transfer reported %v", tr.Err)
	}
	if st := srv.Stats(); st.Retransmits < 6 {
		t.Errorf("retransmits = %d, want at least the 6 lost copies of block 3", st.Retransmits)
	}
}

// A client that vanishes is still abandoned, with ErrTimeout, once both
// MaxIdle and Retries are used up, and its slot is freed.
func TestDeadClientAbandoned(t *testing.T) {
	dir := t.TempDir()
	randomFile(t, dir, "f", 5000)
	var log transferLog
	srv := &Server{Handler: Dir(dir), Log: testLogger(t), Timeout: 50 * time.Millisecond, Retries: 2, MaxIdle: 400 * time.Millisecond, OnTransfer: log.add}
	addr := testServer(t, srv)
	c, raddr := rawClient(t, addr)
	// An RRQ and then silence: the socket stays open, so no ICMP error
	// ends the transfer early.
	c.WriteToUDP(appendRequest(nil, opRRQ, "f", "octet", nil), raddr)
	tr := log.wait(t, 1)[0]
	if !errors.Is(tr.Err, ErrTimeout) {
		t.Errorf("transfer ended with %v, want ErrTimeout", tr.Err)
	}
	// 50 ms timer backing off, 400 ms idle budget: resends at 50, 100,
	// 150, 250 and 450 ms.
	if st := srv.Stats(); st.Retransmits <= 2 || st.Active != 0 {
		t.Errorf("stats = %+v, want more than Retries resends and no active transfer", st)
	}
	if tr.Duration < 400*time.Millisecond {
		t.Errorf("abandoned after %v, before MaxIdle", tr.Duration)
	}
}

// The OACK is resent in answer to the client's repeated RRQ, once per
// repetition, but not to a copy of the RRQ the network duplicated; and the
// server's own timer does not resend it early (atftp aborts on a second
// OACK, see oackResend).
func TestOACKOnlyOnRepeatedRRQ(t *testing.T) {
	dir := t.TempDir()
	randomFile(t, dir, "f", 5000)
	srv := &Server{Handler: Dir(dir), Log: testLogger(t), Timeout: 100 * time.Millisecond}
	addr := testServer(t, srv)
	c, raddr := rawClient(t, addr)
	rrq := appendRequest(nil, opRRQ, "f", "octet", []option{{"blksize", "1000"}})
	oacks := func(wait time.Duration) int {
		n := 0
		buf := make([]byte, 1100)
		end := time.Now().Add(wait)
		for {
			c.SetReadDeadline(end)
			m, _, err := c.ReadFromUDP(buf)
			if err != nil {
				return n
			}
			if m >= 2 && buf[1] == byte(opOACK) {
				n++
			}
		}
	}
	// Two copies at once, as a duplicating network delivers them.
	c.WriteToUDP(rrq, raddr)
	c.WriteToUDP(rrq, raddr)
	// 1 s is ten server timer periods: no resend on the server's own timer.
	if n := oacks(time.Second); n != 1 {
		t.Errorf("after a duplicated RRQ and 1 s: %d OACKs, want 1", n)
	}
	// The client's own retransmission of the RRQ is answered.
	c.WriteToUDP(rrq, raddr)
	// 1 s leaves a loaded machine time to answer, and is far from the
	// 15 s backstop.
	if n := oacks(time.Second); n != 1 {
		t.Errorf("after a repeated RRQ: %d OACKs, want 1", n)
	}
	if st := srv.Stats(); st.DuplicateRRQs != 2 || st.Retransmits != 1 {
		t.Errorf("stats = %+v, want 2 duplicate RRQs and 1 retransmission", st)
	}
}

func TestClassifyRRQ(t *testing.T) {
	tests := []struct {
		name                     string
		heard, clientEnded, same bool
		sinceHeard               time.Duration
		want                     rrqAction
	}{
		{"client has not heard from us: its own retransmission", false, false, true, 0, rrqRepeat},
		{"not heard, different options: the client moved on (probe, then the file)", false, false, false, 0, rrqNew},
		{"network copy read after the client's ACK (loaded read loop)", true, false, true, 3 * time.Millisecond, rrqCopy},
		{"copy read while the client still answers", true, false, true, rrqGap - time.Millisecond, rrqCopy},
		{"client silent for its own timer, then asks again: new", true, false, true, rrqGap, rrqNew},
		{"tsize probe ended with ERROR, then the real request: new", true, true, true, time.Millisecond, rrqNew},
		{"different request from the same port: new", true, false, false, time.Millisecond, rrqNew},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := classifyRRQ(tc.heard, tc.clientEnded, tc.same, tc.sinceHeard); got != tc.want {
				t.Fatalf("classifyRRQ(heard %v, ended %v, same %v, %v) = %d, want %d",
					tc.heard, tc.clientEnded, tc.same, tc.sinceHeard, got, tc.want)
			}
		})
	}
}
