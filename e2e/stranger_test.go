//go:build e2e

package e2e

import (
	"context"
	be "encoding/binary"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/lab"
)

// strangerAddrs gives the stranger's namespace the addresses
// 10.99.SUBNET.160-… (count of them, outside the site server's range) and
// returns them.
func strangerAddrs(t *testing.T, ns, subnet string, count int) []net.IP {
	t.Helper()
	ips := make([]net.IP, count)
	for i := range ips {
		ips[i] = net.ParseIP(fmt.Sprintf("10.99.%s.%d", subnet, 160+i))
		if i == 0 {
			continue // the peer's own address
		}
		if out, err := exec.Command("ip", "-n", ns, "addr", "add", ips[i].String()+"/24", "dev", "eth0").CombinedOutput(); err != nil {
			t.Fatalf("add %s to %s: %v: %s", ips[i], ns, err, out)
		}
	}
	return ips
}

// connFlood is a stranger holding as many idle HTTP connections as the
// server lets it, from every one of its addresses: each connection sends
// one GET /healthz and then sits idle; whenever the server closes one,
// the stranger opens another.
type connFlood struct {
	held, peak, opened, cut atomic.Int64
}

// run keeps per connections open from each address until ctx ends. The
// sockets are made inside the namespace, on the one thread InNS switches.
func (f *connFlood) run(ctx context.Context, t *testing.T, ns string, ips []net.IP, target string, per int) {
	var wg sync.WaitGroup
	defer wg.Wait()
	count := make([]atomic.Int64, len(ips))
	err := lab.InNS(ns, func() error {
		for ctx.Err() == nil {
			for i, ip := range ips {
				for count[i].Load() < int64(per) && ctx.Err() == nil {
					d := net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: time.Second}
					c, err := d.DialContext(ctx, "tcp4", target)
					if err != nil {
						break // refused or the backlog is full: next address
					}
					f.opened.Add(1)
					count[i].Add(1)
					wg.Add(1)
					go f.hold(ctx, c, &count[i], &wg)
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		return nil
	})
	if err != nil {
		t.Errorf("connection flood: %v", err)
	}
}

// hold sends one request on c and keeps it until the server closes it
// or ctx ends.
func (f *connFlood) hold(ctx context.Context, c net.Conn, count *atomic.Int64, wg *sync.WaitGroup) {
	defer wg.Done()
	defer count.Add(-1)
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	defer c.Close()
	if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: stagehand\r\n\r\n")); err != nil {
		return
	}
	buf := make([]byte, 512)
	if _, err := c.Read(buf); err != nil {
		return // refused by the limits
	}
	for n, p := f.held.Add(1), f.peak.Load(); n > p && !f.peak.CompareAndSwap(p, n); p = f.peak.Load() {
	}
	defer f.held.Add(-1)
	for {
		if _, err := c.Read(buf); err != nil {
			if ctx.Err() == nil {
				f.cut.Add(1)
			}
			return
		}
	}
}

// tftpFlood sends, every interval, a read request from each of eight
// ports of each address (eight transfers an address) and never
// acknowledges anything; it counts the server's replies.
func tftpFlood(ctx context.Context, t *testing.T, ns string, ips []net.IP, server, file string, interval time.Duration) (replies *atomic.Int64) {
	t.Helper()
	var conns []*net.UDPConn
	err := lab.InNS(ns, func() error {
		for _, ip := range ips {
			for range 8 {
				c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: ip})
				if err != nil {
					return err
				}
				conns = append(conns, c)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("tftp flood sockets: %v", err)
	}
	replies = new(atomic.Int64)
	dst := &net.UDPAddr{IP: net.ParseIP(server), Port: 69}
	rrq := be.BigEndian.AppendUint16(nil, 1)
	rrq = append(append(append(rrq, file...), 0), "octet\x00blksize\x001468\x00tsize\x000\x00"...)
	for _, c := range conns {
		context.AfterFunc(ctx, func() { c.Close() })
		go func() {
			buf := make([]byte, 2048)
			for {
				if _, _, err := c.ReadFromUDP(buf); err != nil {
					return
				}
				replies.Add(1)
			}
		}()
	}
	go func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			for _, c := range conns {
				c.WriteToUDP(rrq, dst)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return replies
}

// TestInstallUnderStrangerFloods: a stranger on the provisioning network
// with 70 addresses holds every idle HTTP connection the server allows
// and floods TFTP with read requests it never acknowledges, for the
// whole of a UEFI host's install (OVMF's PXE fetches snponly.efi over
// TFTP, iPXE then fetches scripts, kernel and initrd over HTTP). The host
// installs and goes to local disk on its second boot, and the operator
// API answers every time it is asked meanwhile.
func TestInstallUnderStrangerFloods(t *testing.T) {
	raiseNoFile(t)
	s := proxyLab(t, "stranger", "11")
	mac, name := "52:54:00:e2:0b:01", "rack1-flooded"
	s.cli("host", "add", mac, "--profile", "lab", "--name", name)

	stranger := s.n.AddPeer(t, "strgr", "10.99.11.160/24")
	ips := strangerAddrs(t, stranger, "11", 70)
	ctx, cancel := context.WithCancel(context.Background())
	var flood connFlood
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); flood.run(ctx, t, stranger, ips, s.n.ServerIP.String()+":8080", 80) }()
	replies := tftpFlood(ctx, t, stranger, ips, s.n.ServerIP.String(), "snponly.efi", time.Second)

	// The operator, asking for the status every half second throughout.
	var asked, failed atomic.Int64
	var firstErr atomic.Value
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			asked.Add(1)
			if _, err := s.cliErr("status"); err != nil && ctx.Err() == nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
			}
			time.Sleep(500 * time.Millisecond)
		}
	}()
	// The floods are in place before the host powers on.
	for deadline := time.Now().Add(30 * time.Second); flood.held.Load() < 64; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the stranger holds %d connections after 30s, want at least 64", flood.held.Load())
		}
	}

	start := time.Now()
	log := installThenLocal(t, s, lab.VMOptions{Firmware: lab.UEFI, MAC: mac}, name)
	took := time.Since(start)
	cancel()
	wg.Wait()

	t.Logf("install and second boot under the floods: %.1fs; stranger's connections: %d opened, peak %d held, %d cut by the server; TFTP replies to the stranger: %d; operator status: %d asked, %d failed",
		took.Seconds(), flood.opened.Load(), flood.peak.Load(), flood.cut.Load(), replies.Load(), asked.Load(), failed.Load())
	if failed.Load() > 0 {
		t.Errorf("the operator API failed %d of %d times under the floods; first: %v", failed.Load(), asked.Load(), firstErr.Load())
	}
	// A flood that never reached the server proves nothing.
	if flood.peak.Load() < 64 || replies.Load() == 0 {
		t.Errorf("the floods did not reach the server: peak %d connections held, %d TFTP replies", flood.peak.Load(), replies.Load())
	}
	// The firmware got its boot file over TFTP. Refused, OVMF prints
	// PXE-E23 and falls back to its next boot options (PXE over IPv6,
	// then HTTP Boot, which stagehand also serves): the install would
	// succeed, but not by the path under test.
	if !strings.Contains(log, `BdsDxe: starting Boot0001 "UEFI PXEv4`) || strings.Contains(log, "PXE-E") {
		t.Errorf("the firmware did not start the boot file it fetched over TFTP on its first try; serial head:\n%s", head(log, 20))
	}
	if ev := s.events(mac); !tftpBeforeBooting(ev, "snponly.efi") {
		t.Errorf("the host's TFTP transfer of snponly.efi is not recorded; events: %+v", ev)
	}
}

// raiseNoFile lifts the test's descriptor limit (the server, started by
// it, inherits it) to the hard limit: the stranger alone holds thousands.
func raiseNoFile(t *testing.T) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Max < 16384 {
		t.Fatalf("RLIMIT_NOFILE hard limit %d: this test needs 16384 (raise it with ulimit -Hn)", lim.Max)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
}

// head is the first n lines of s.
func head(s string, n int) string {
	lines := strings.SplitAfterN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "")
}
