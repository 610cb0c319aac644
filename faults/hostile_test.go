package faults

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/tftp/tftptest"
)

// openFDs counts the server process's open file descriptors.
func (s *server) openFDs() int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", s.Pid()))
	if err != nil {
		s.t.Fatal(err)
	}
	return len(ents)
}

// rss is the server's resident set in KiB.
func (s *server) rss() int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.Pid()))
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			var kb int
			fmt.Sscanf(strings.TrimPrefix(l, "VmRSS:"), "%d", &kb)
			return kb
		}
	}
	return 0
}

// Ten thousand connections from one stranger's address that never send
// a request: the server admits its per-address cap (64) and resets the
// rest at accept, so its descriptors and memory stay bounded, a real
// client from another address is served meanwhile, and every descriptor
// is released when the connections go away.
func TestIdleConnectionFlood(t *testing.T) {
	const n, perAddress = 10000, 64
	raiseNoFile(t, n+500)
	s := newServer(t)
	s.start()
	baseFDs, baseRSS := s.openFDs(), s.rss()

	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	// 127.0.0.2: a stranger (127.0.0.1 is the server's own host, which
	// the limits trust).
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	peakFDs := 0
	for i := 0; i < n; i++ {
		c, err := d.Dial("tcp4", fmt.Sprintf("127.0.0.1:%d", s.httpPort))
		if errors.Is(err, syscall.ECONNRESET) {
			continue // reset before connect returned
		}
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
		if i%1000 == 999 {
			peakFDs = max(peakFDs, s.openFDs())
		}
	}
	served := time.Now()
	r, err := httpFrom("127.0.0.3").Get(s.url() + "/boot.ipxe")
	if err != nil {
		t.Fatalf("a real client with %d connections attempted: %v", n, err)
	}
	r.Body.Close()
	wait := time.Since(served)
	peakFDs, peakRSS := max(peakFDs, s.openFDs()), s.rss()
	refused := s.metrics()[`stagehand_http_conns_refused_total{reason="per_address"}`]
	t.Logf("%d connections from one address: %v reset at accept; server fds %d → %d, RSS %d → %d KiB; a client from another address served in %v",
		n, refused, baseFDs, peakFDs, baseRSS, peakRSS, wait.Round(time.Microsecond))
	// The per-address cap, plus the odd descriptor of the scrape; the
	// idle timeout frees the held ones every 5 s, so a few more cycles
	// of 64 may be admitted over the flood, never thousands.
	if peakFDs > baseFDs+perAddress+20 {
		t.Errorf("server held %d descriptors during the flood, %d before: above the per-address cap of %d", peakFDs, baseFDs, perAddress)
	}
	if refused < n/2 {
		t.Errorf("%v of %d connections reset at accept, want most", refused, n)
	}
	for _, c := range conns {
		c.Close()
	}
	conns = conns[:0]
	deadline := time.Now().Add(10 * time.Second)
	for s.openFDs() > baseFDs+5 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if got := s.openFDs(); got > baseFDs+5 {
		t.Fatalf("server holds %d descriptors after the flood, %d before", got, baseFDs)
	}
}

// A client that sends its request headers a byte at a time (slowloris)
// is cut off by the read-header timeout instead of holding a connection
// forever.
func TestSlowHeadersAreCutOff(t *testing.T) {
	s := newServer(t)
	s.start()
	c, err := net.Dial("tcp4", fmt.Sprintf("127.0.0.1:%d", s.httpPort))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	fmt.Fprint(c, "GET /boot.ipxe HTTP/1.1\r\nHost: x\r\n")
	closed := make(chan time.Duration, 1)
	go func() {
		buf := make([]byte, 1)
		for {
			if _, err := fmt.Fprint(c, "X"); err != nil {
				break
			}
			c.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := c.Read(buf); err != nil && !os.IsTimeout(err) {
				break
			}
		}
		closed <- time.Since(start)
	}()
	select {
	case d := <-closed:
		if d < 4*time.Second {
			t.Fatalf("connection closed after %v, before the 5 s read-header timeout", d)
		}
		t.Logf("slow client cut off after %v", d.Round(100*time.Millisecond))
	case <-time.After(30 * time.Second):
		t.Fatal("slow client still connected after 30 s")
	}
}

// Headers past the server's limit are refused with 431, and the server
// carries on.
func TestOversizedHeaders(t *testing.T) {
	s := newServer(t)
	s.start()
	c, err := net.Dial("tcp4", fmt.Sprintf("127.0.0.1:%d", s.httpPort))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /boot.ipxe HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", strings.Repeat("a", 64<<10))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("64 KiB header: %s, want 431", resp.Status)
	}
	if r, err := http.Get(s.url() + "/healthz"); err != nil || r.StatusCode != http.StatusOK {
		t.Fatalf("server after an oversized header: %v", err)
	}
}

// One address sends 600 read requests from 600 ports and never ACKs,
// which without a per-address cap (and before --tftp-max-pending) held
// all 512 transfer slots for half a minute. With the default cap (8)
// another host still gets its iPXE binary byte for byte, from curl; with
// the cap lifted the unanswered requests hold at most the 128 pending
// slots, the later ones taking the older ones' slots or dropped, and curl
// is served too (TestStrangerTFTPFlood floods from many addresses).
func TestTFTPFloodFromOneAddress(t *testing.T) {
	const flood = 600
	raiseNoFile(t, flood+500)
	for _, tc := range []struct {
		name   string
		args   []string
		capped bool
	}{
		{"default cap", nil, true},
		{"no cap", []string{"--tftp-max-per-client", "0"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t)
			s.args = tc.args
			want := s.writeBinary("undionly.kpxe", 74213)
			s.start()
			addr := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: s.tftpPort}

			// Every flooder socket stays open (so its port stays its own)
			// and unread until the end. The requests go in batches, each
			// once the server has seen the last (it runs or refused it):
			// 600 at once would overflow the socket's receive buffer, and
			// resending would count refusals twice.
			rrq := tftptest.RRQ("undionly.kpxe", "")
			socks := make([]*net.UDPConn, 0, flood)
			defer func() {
				for _, c := range socks {
					c.Close()
				}
			}()
			key := `stagehand_tftp_refused_total{reason="per_client"}`
			busyKey := `stagehand_tftp_refused_total{reason="busy"}`
			var m map[string]float64
			// Every request is running, refused, dropped or has given its
			// slot to a later one.
			seen := func() float64 {
				return m["stagehand_tftp_active_transfers"] + m[key] + m[busyKey] + m[`stagehand_tftp_refused_total{reason="pending"}`] +
					m[`stagehand_tftp_unanswered_total{reason="evicted"}`] + m[`stagehand_tftp_unanswered_total{reason="timeout"}`]
			}
			for len(socks) < flood {
				for range 50 {
					c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: addr.IP})
					if err != nil {
						t.Fatalf("flood socket %d: %v", len(socks), err)
					}
					socks = append(socks, c)
					if _, err := c.WriteToUDP(rrq, addr); err != nil {
						t.Fatal(err)
					}
				}
				for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
					if m = s.metrics(); seen() >= float64(len(socks)) {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("the server saw %v of %d requests", seen(), len(socks))
					}
				}
			}
			t.Logf("%s: after %d RRQs from 127.0.0.1: active %v, refused per address %v, refused busy %v",
				tc.name, flood, m["stagehand_tftp_active_transfers"], m[key], m[busyKey])

			out := filepath.Join(t.TempDir(), "undionly.kpxe")
			cmd := exec.Command("curl", "-sS", "--interface", "127.0.0.2", "--max-time", "30", "-o", out,
				fmt.Sprintf("tftp://127.0.0.1:%d/undionly.kpxe", s.tftpPort))
			cmdOut, err := cmd.CombinedOutput()
			got, _ := os.ReadFile(out)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("curl from 127.0.0.2 not served (%d bytes): %v\n%s", len(got), err, cmdOut)
			}
			before := m[busyKey]
			m = s.metrics()
			if tc.capped {
				if m[key] != flood-8 || m[busyKey] != 0 || m["stagehand_tftp_active_transfers"] != 8 {
					t.Errorf("with the cap: refused per address %v (want %d), busy %v (want 0), active %v (want 8)",
						m[key], flood-8, m[busyKey], m["stagehand_tftp_active_transfers"])
				}
				// A flooder over the cap is told so, not left to time out.
				buf := make([]byte, 128)
				socks[flood-1].SetReadDeadline(time.Now().Add(2 * time.Second))
				n, _, err := socks[flood-1].ReadFromUDP(buf)
				if err != nil || n < 4 || buf[1] != 5 || !strings.Contains(string(buf[4:n]), "your address") {
					t.Errorf("last flood request's answer: %q, %v; want ERROR naming the address", buf[:max(n, 0)], err)
				}
			} else if m[key] != 0 || before != 0 || m[busyKey] != 0 || m["stagehand_tftp_pending_transfers"] > 128 {
				t.Errorf("without the cap: refused per address %v (want 0), busy %v before curl and %v after (want 0), pending %v (want at most 128)",
					m[key], before, m[busyKey], m["stagehand_tftp_pending_transfers"])
			}
		})
	}
}
