package faults

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Why atftp needs its OACK exactly once (issue 5: "atftp exited 255
// within 81 ms under duplication, before any data"). Through a relay that
// sends every datagram twice, tftp-hpa and curl still fetch undionly.kpxe
// byte-exact from the real binary, while atftp 0.8 aborts: its trace
// shows the first OACK, its ACK 0, then "tftp: unexpected OACK" on the
// network's copy, and it sends ERROR and exits. atftp's tftp_file.c
// aborts on any second OACK outside multicast ("Normally we shouldn't
// receive more than one OACK in non-multicast mode"), which RFC 2347 does
// not require. The server cannot stop the network from copying a
// datagram; what it can do is never send the OACK twice itself while the
// client may still answer the first (tftp.retryPolicy.oackResend), which
// is what makes atftp pass at 20% loss (TestTFTPUnderHeavyLoss).
func TestAtftpAbortsOnSecondOACK(t *testing.T) {
	want := bootBinaries(t)["undionly.kpxe"]
	l := newLossyNet(t)
	l.startServer(t)
	r := newRelay(t, l.srvNS, l.srvIP, &net.UDPAddr{IP: net.ParseIP(l.srvIP).To4(), Port: 69}, 100, 0, 0)
	a := r.Addr()
	host, port := a.IP.String(), strconv.Itoa(a.Port)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	for _, c := range tftpClients[1:] { // tftp-hpa, curl
		got, err := fetch(ctx, t, l.cliNS, c, host, port, "undionly.kpxe")
		if err != nil {
			t.Errorf("%s through a duplicating relay: %v", c.name, err)
		} else if !bytes.Equal(got, want) {
			t.Errorf("%s through a duplicating relay: got %d bytes, want %d identical bytes", c.name, len(got), len(want))
		}
	}

	traced := tftpClient{"atftp --trace", func(h, p, f, o string) []string {
		return []string{"atftp", "--trace", "--option", "blksize 1468", "--option", "timeout 1", "--tftp-timeout", "2", "-g", "-r", f, "-l", o, h, p}
	}}
	_, err := fetch(ctx, t, l.cliNS, traced, host, port, "undionly.kpxe")
	if err == nil {
		t.Fatal("atftp fetched the file although every OACK reached it twice: the atftp limitation this test documents is gone; put its OACKs back into TestTFTPDuplicationReordering's duplication")
	}
	out := err.Error()
	if !strings.Contains(out, "unexpected OACK") || strings.Count(out, "received OACK") != 1 || strings.Contains(out, "received DATA") {
		t.Errorf("atftp failed, but not on the second OACK before any data:\n%s", out)
	}
	t.Logf("atftp through a duplicating relay:\n%s", out)
	fwd, dups, _ := r.counts()
	t.Logf("relay: %d datagrams, %d duplicated", fwd, dups)
}
