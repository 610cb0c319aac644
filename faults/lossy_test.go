package faults

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

// bootBinaries reads the files the server serves from /usr/lib/ipxe
// (ipxe.efi there is a symlink into /boot, which the server follows).
func bootBinaries(t *testing.T) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	for _, f := range []string{"undionly.kpxe", "ipxe.efi"} {
		b, err := os.ReadFile("/usr/lib/ipxe/" + f)
		if err != nil {
			t.Fatalf("%v: install the Debian package ipxe", err)
		}
		files[f] = b
	}
	return files
}

// fetchAll runs every client for every file at once (each transfer spends
// most of its time waiting out retransmission timers, not on the CPU) and
// checks each result byte for byte against the original.
func fetchAll(t *testing.T, clients []tftpClient, ns, host, port string, files map[string][]byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 450*time.Second)
	defer cancel()
	type result struct {
		what string
		took time.Duration
		err  error
	}
	var (
		mu      sync.Mutex
		results []result
		wg      sync.WaitGroup
	)
	for _, c := range clients {
		for name, want := range files {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				got, err := fetch(ctx, t, ns, c, host, port, name)
				if err == nil && !bytes.Equal(got, want) {
					err = fmt.Errorf("got %d bytes, want %d identical bytes", len(got), len(want))
				}
				mu.Lock()
				results = append(results, result{c.name + " " + name, time.Since(start), err})
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	for _, r := range results {
		if r.err != nil {
			t.Errorf("%s after %v: %v", r.what, r.took.Round(time.Millisecond), r.err)
		} else {
			t.Logf("%s: byte-exact in %v", r.what, r.took.Round(time.Millisecond))
		}
	}
}

// Real TFTP clients fetch undionly.kpxe from the real binary while the
// network drops 5% of the frames in each direction; every byte arrives.
// Loss comes from nftables on the bridge between the namespaces: this
// kernel has no sch_netem, so tc netem cannot be used.
//
// ipxe.efi is left out: at 5% it takes 1-5 minutes per client (every
// lost lock-step packet costs a retransmission timer; curl's own timer is
// 5 s), too long for CI. TestTFTPUnderHeavyLoss covers 20%.
func TestTFTPUnderLoss(t *testing.T) {
	l := newLossyNet(t)
	l.startServer(t)
	l.setLoss(t, 5)
	files := bootBinaries(t)
	fetchAll(t, tftpClients, l.cliNS, l.srvIP, "69", map[string][]byte{"undionly.kpxe": files["undionly.kpxe"]})
	t.Logf("5%% loss: nft %s", l.dropped(t))
}

// heavyLossClients are tftpClients as a lossy rack would run them. At 20%
// loss each way a lock-step round (DATA out, ACK back) fails 36% of the
// time, so runs of lost ACKs are routine; the server keeps resending for
// 30 s without progress (tftp.DefaultMaxIdle) and each client must not
// give up first:
//   - atftp: its own timer down from 5 s to 2 s (--tftp-timeout 2). The
//     server does not resend the OACK on its timer before 15 s (atftp
//     aborts on a second OACK, see tftp.retryPolicy.oackResend); atftp's
//     ACK 0 retransmissions are what recover a lost ACK 0, and at 5 s its
//     third one would race that 15 s backstop in about 1% of runs. atftp
//     gives up after 6 timeouts in a row (NB_OF_RETRY 5), 12 s of silence
//     at 2 s, which the server's resends make improbable. atftp answers
//     only the first repeat of a DATA it already has and ignores the rest
//     until its own timer fires; the server's backoff (1, 1, 1, 2, 4, 8 s)
//     leaves it that silence, after 4 s here rather than 8 s at 5 s.
//   - tftp-hpa: its defaults (5 s rexmt, 25 s total) suffice: once its
//     RRQ got through, the server's 1 s retransmissions reach it well
//     inside 25 s.
//   - curl: --tftp-no-options. curl turns --max-time into the RFC 2349
//     timeout it asks for (max-time/50, at least 5 s: 8 s at 420 s), which
//     the server honours, so each lost round costs 5-8 s: 3m27s for
//     undionly.kpxe at 20% (measured), too long for CI. Without options it
//     gets 512-byte blocks and the server's 1 s timer, like tftp-hpa; it
//     still re-ACKs every repeated DATA, and its own retry budget (50
//     resends within --max-time) outlasts the server's.
var heavyLossClients = []tftpClient{
	{"atftp", func(h, p, f, o string) []string {
		return []string{"atftp", "--option", "blksize 1468", "--option", "timeout 1", "--tftp-timeout", "2", "-g", "-r", f, "-l", o, h, p}
	}},
	tftpClients[1],
	{"curl", func(h, p, f, o string) []string {
		return []string{"curl", "-sS", "--tftp-no-options", "--max-time", "420", "-o", o, fmt.Sprintf("tftp://%s:%s/%s", h, p, f)}
	}},
}

// atftp, tftp-hpa and curl fetch undionly.kpxe byte-exact from the real
// binary while 20% of the frames are dropped in each direction. Before the
// retry budget became time without progress (issue 5), atftp and tftp-hpa
// failed here: 5 resends at 1 s ran out during a run of lost ACKs.
func TestTFTPUnderHeavyLoss(t *testing.T) {
	l := newLossyNet(t)
	l.startServer(t)
	l.setLoss(t, 20)
	files := bootBinaries(t)
	fetchAll(t, heavyLossClients, l.cliNS, l.srvIP, "69", map[string][]byte{"undionly.kpxe": files["undionly.kpxe"]})
	t.Logf("20%% loss: nft %s", l.dropped(t))
}

// The same clients and files through a relay that sends 10% of the
// datagrams twice and holds back another 10% by 30 ms so later ones
// overtake them, both ways (what netem's duplicate and reorder would do).
// A duplicated DATA or ACK must not corrupt the file or end the
// transfer (RFC 1350's Sorcerer's Apprentice hazard), and a late one
// must be recognised as stale.
func TestTFTPDuplicationReordering(t *testing.T) {
	files := bootBinaries(t)
	l := newLossyNet(t)
	l.startServer(t)
	r := newRelay(t, l.srvNS, l.srvIP, &net.UDPAddr{IP: net.ParseIP(l.srvIP).To4(), Port: 69}, 10, 10, 30*time.Millisecond)
	// atftp aborts when it receives a second OACK (TestAtftpAbortsOnSecondOACK),
	// and a copy made by the network is one no server can prevent: the
	// relay duplicates every other datagram, RRQs included, but not
	// OACKs. (A server-side resend of the OACK is what the server can
	// avoid, and does: see tftp.retryPolicy.oackResend.)
	r.neverDuplicate(isOACK)
	a := r.Addr()
	fetchAll(t, tftpClients, l.cliNS, a.IP.String(), strconv.Itoa(a.Port), files)
	fwd, dups, delays := r.counts()
	t.Logf("relay: %d datagrams, %d duplicated, %d delayed", fwd, dups, delays)
	if dups == 0 || delays == 0 {
		t.Errorf("relay duplicated %d and delayed %d of %d datagrams: the faults were not exercised", dups, delays, fwd)
	}
}

// isOACK matches a TFTP option acknowledgement (opcode 6, RFC 2347).
func isOACK(b []byte) bool { return len(b) >= 2 && b[0] == 0 && b[1] == 6 }
