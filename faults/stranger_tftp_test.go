package faults

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/tftp/tftptest"
)

// tftpFlood is a stranger's TFTP flood: read requests for undionly.kpxe
// from perAddr ports of each of its loopback addresses (127.10.x.y),
// never answered, a burst every interval until stop.
type tftpFlood struct {
	socks  []*net.UDPConn
	to     *net.UDPAddr
	sent   atomic.Int64
	bursts atomic.Int64
	quit   chan struct{}
	done   chan struct{}
}

func startTFTPFlood(t *testing.T, to *net.UDPAddr, addrs, perAddr int, interval time.Duration) *tftpFlood {
	t.Helper()
	f := &tftpFlood{to: to, quit: make(chan struct{}), done: make(chan struct{})}
	// Every socket stays open and unread until the test ends: its port
	// stays its own, and the server's packets to it are neither answered
	// nor refused (ICMP would end the transfer at once).
	t.Cleanup(func() {
		for _, c := range f.socks {
			c.Close()
		}
	})
	for i := range addrs {
		ip := net.IPv4(127, 10, byte(i/250), byte(i%250+1))
		for range perAddr {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: ip})
			if err != nil {
				t.Fatalf("flood socket on %s: %v", ip, err)
			}
			f.socks = append(f.socks, c)
		}
	}
	go f.run(interval)
	t.Cleanup(f.stop)
	return f
}

func (f *tftpFlood) run(interval time.Duration) {
	defer close(f.done)
	for round := 0; ; round++ {
		// Each burst differs from the last (blksize), so the server takes
		// it for a new request from that port, not a repeat of the one it
		// serves there: every burst asks for a slot per socket.
		rrq := tftptest.RRQ("undionly.kpxe", "", tftptest.Option{Name: "blksize", Value: strconv.Itoa(512 + round%900)},
			tftptest.Option{Name: "tsize", Value: "0"})
		for _, c := range f.socks {
			if _, err := c.WriteToUDP(rrq, f.to); err == nil {
				f.sent.Add(1)
			}
		}
		f.bursts.Add(1)
		// Between half and one and a half intervals, as a script's
		// sleeps drift: a flood of a fixed period phase-locks with a
		// client's fixed retry timer (curl's and atftp's 5 s), which
		// then lands in the same instant after each burst on every try.
		select {
		case <-f.quit:
			return
		case <-time.After(interval/2 + time.Duration(rand.Int64N(int64(interval)))):
		}
	}
}

func (f *tftpFlood) stop() {
	select {
	case <-f.quit:
	default:
		close(f.quit)
	}
	<-f.done
}

// slotWatch polls the server's TFTP gauges until stopped and keeps the
// highest values seen.
type slotWatch struct {
	mu              sync.Mutex
	active, pending float64
	quit, done      chan struct{}
}

func watchSlots(s *server) *slotWatch {
	w := &slotWatch{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			m := s.metrics()
			w.mu.Lock()
			w.active = max(w.active, m["stagehand_tftp_active_transfers"])
			w.pending = max(w.pending, m["stagehand_tftp_pending_transfers"])
			w.mu.Unlock()
			select {
			case <-w.quit:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return w
}

func (w *slotWatch) stop() (active, pending float64) {
	close(w.quit)
	<-w.done
	return w.active, w.pending
}

// realTFTPClient is a genuine client fetching undionly.kpxe from the
// server's port into out.
type realTFTPClient struct {
	name string
	args func(port int, out string) []string
}

var strangerFloodClients = []realTFTPClient{
	{"curl", func(port int, out string) []string {
		// From an address of its own; curl's defaults otherwise (tsize
		// and blksize 512 asked, its timer 5 s).
		return []string{"curl", "-sS", "--interface", "127.0.0.2", "--max-time", "120", "-o", out,
			fmt.Sprintf("tftp://127.0.0.1:%d/undionly.kpxe", port)}
	}},
	{"atftp", func(port int, out string) []string {
		// As a PXE ROM asks: 1468-byte blocks; atftp's own 5 s timer.
		return []string{"atftp", "--option", "blksize 1468", "-g", "-r", "undionly.kpxe", "-l", out, "127.0.0.1", strconv.Itoa(port)}
	}},
}

// A stranger sends 8 read requests from each of 70, and then 500,
// loopback addresses, and never answers, the burst repeated about every
// second (the lock-out needed one every 30 s). Meanwhile curl and atftp
// each fetch undionly.kpxe (100 KiB) three times and must get it byte
// for byte, and no request is refused "server busy": the unanswered
// requests hold at most --tftp-max-pending slots and yield them to newer
// requests, so the flood cannot starve a machine that answers. Before
// that, 560 unanswered requests held all 512 slots for 33 s and both
// clients were refused "server busy". The time until each client was
// served and the peak slots in use are logged.
func TestStrangerTFTPFlood(t *testing.T) {
	for _, addrs := range []int{70, 500} {
		t.Run(fmt.Sprintf("%d addresses", addrs), func(t *testing.T) {
			const perAddr = 8
			raiseNoFile(t, uint64(addrs*perAddr+1000))
			s := newServer(t)
			want := s.writeBinary("undionly.kpxe", 100<<10)
			s.start()
			w := watchSlots(s)
			f := startTFTPFlood(t, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: s.tftpPort}, addrs, perAddr, time.Second)
			// The flood holds slots, and has for a few bursts, before the
			// clients ask.
			for deadline := time.Now().Add(10 * time.Second); s.metrics()["stagehand_tftp_active_transfers"] < 100 || f.bursts.Load() < 2; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("the flood never held 100 slots: %v", s.metrics())
				}
			}

			for _, c := range strangerFloodClients {
				for i := range 3 {
					took, err := fetchDuringFlood(t, c, s.tftpPort, want)
					if err != nil {
						t.Errorf("%s, fetch %d, after %v: %v", c.name, i+1, took.Round(time.Millisecond), err)
						continue
					}
					t.Logf("%s, fetch %d: undionly.kpxe byte-exact in %v", c.name, i+1, took.Round(time.Millisecond))
					// The next fetch at another point of the bursts' cycle.
					time.Sleep(300 * time.Millisecond)
				}
			}
			f.stop()
			peakActive, peakPending := w.stop()
			m := s.metrics()
			t.Logf("flood: %d bursts, %d requests from %d addresses; peak slots polled: %v active, %v pending; "+
				"peak gauges: %v active, %v pending; unanswered transfers ended: %v after the timeout, %v evicted; "+
				"requests dropped for want of a pending slot: %v; refused busy: %v; server peak RSS %d KiB",
				f.bursts.Load(), f.sent.Load(), addrs, peakActive, peakPending,
				m[`stagehand_tftp_peak_transfers{state="active"}`], m[`stagehand_tftp_peak_transfers{state="pending"}`],
				m[`stagehand_tftp_unanswered_total{reason="timeout"}`], m[`stagehand_tftp_unanswered_total{reason="evicted"}`],
				m[`stagehand_tftp_refused_total{reason="pending"}`], m[`stagehand_tftp_refused_total{reason="busy"}`], s.peakRSS())
			if busy := m[`stagehand_tftp_refused_total{reason="busy"}`]; busy != 0 {
				t.Errorf("%v requests refused \"server busy\": the flood held every slot", busy)
			}
			if p := m[`stagehand_tftp_peak_transfers{state="pending"}`]; p < 100 || p > 128 {
				t.Errorf("peak pending transfers %v: want the flood to fill the 128 pending slots and no more", p)
			}
			if m[`stagehand_tftp_unanswered_total{reason="evicted"}`]+m[`stagehand_tftp_unanswered_total{reason="timeout"}`] == 0 {
				t.Error("no unanswered transfer gave its slot back")
			}
		})
	}
}

// fetchDuringFlood runs c once and checks its file against want.
func fetchDuringFlood(t *testing.T, c realTFTPClient, port int, want []byte) (time.Duration, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	dir := t.TempDir()
	out := filepath.Join(dir, "undionly.kpxe")
	args := c.args(port, out)
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir = dir
	start := time.Now()
	output, err := cmd.CombinedOutput()
	took := time.Since(start)
	if err != nil {
		return took, fmt.Errorf("%v\n%s", err, output)
	}
	got, err := os.ReadFile(out)
	if err != nil || !bytes.Equal(got, want) {
		return took, fmt.Errorf("got %d bytes (%v), want %d identical bytes\n%s", len(got), err, len(want), output)
	}
	return took, nil
}
