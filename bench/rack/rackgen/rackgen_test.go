package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/rs/zerolog"

	"github.com/stagehand-dev/stagehand/attrib"
	"github.com/stagehand-dev/stagehand/dhcp"
	"github.com/stagehand-dev/stagehand/tftp"
)

const installGolden = `#!ipxe
# stagehand stage 2: install
echo stagehand: installing 52:54:00:12:34:56 (rack1-node01) (attempt 2)
set stagehand-try:int32 0
:stagehand-fetch
imgfree
kernel http://10.0.0.1:8080/artifacts/edge/kernel initrd=initrd.img console=ttyS0 rd.neednet=1 config_url=http://10.0.0.1:8080/userdata/TOKEN || goto stagehand-retry
initrd --name initrd.img http://10.0.0.1:8080/artifacts/edge/initrd || goto stagehand-retry
boot || goto stagehand-retry
`

func TestParseInstall(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script string
		want   installScript
		errSub string
	}{
		{"install", installGolden, installScript{
			kernel: "http://10.0.0.1:8080/artifacts/edge/kernel", initrd: "http://10.0.0.1:8080/artifacts/edge/initrd",
			configURL: "http://10.0.0.1:8080/userdata/TOKEN"}, ""},
		{"local boot", "#!ipxe\necho stagehand: x is installed; booting local disk\nexit 1\n", installScript{}, "no kernel/initrd"},
		{"no config_url", "#!ipxe\nkernel http://s/k quiet\ninitrd http://s/i\n", installScript{}, "config_url"},
		{"not ipxe", "<html>", installScript{}, "not an iPXE script"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseInstall([]byte(tc.script))
			if tc.errSub != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errSub) {
					t.Fatalf("err %v, want one containing %q", err, tc.errSub)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestStage2URL(t *testing.T) {
	stage1 := "#!ipxe\nset stagehand-try:int32 0\n:stagehand-chain\n" +
		"chain --autofree http://10.250.4.1:8080/ipxe?mac=${mac:hexhyp}&uuid=${uuid}&serial=${serial:uristring}&manufacturer=${manufacturer:uristring}&product=${product:uristring}&buildarch=${buildarch}&platform=${platform}&x=${unknown} && goto stagehand-end ||\n"
	h := rackHost(41)
	for _, tc := range []struct {
		fw   firmware
		want string
	}{
		{fwBIOS, "http://10.250.4.1:8080/ipxe?mac=02-52-4b-00-00-2a&uuid=5e7a9e00-0000-4000-8000-00000000002a&serial=RK0000042&manufacturer=Stagehand+Labs&product=Rack+Sim+1U&buildarch=i386&platform=pcbios&x="},
		{fwUEFI, "http://10.250.4.1:8080/ipxe?mac=02-52-4b-00-00-2a&uuid=5e7a9e00-0000-4000-8000-00000000002a&serial=RK0000042&manufacturer=Stagehand+Labs&product=Rack+Sim+1U&buildarch=x86_64&platform=efi&x="},
	} {
		got, err := stage2URL([]byte(stage1), h, tc.fw)
		if err != nil || got != tc.want {
			t.Errorf("arch %d: got %q, %v\nwant %q", tc.fw.arch, got, err, tc.want)
		}
	}
	if _, err := stage2URL([]byte("#!ipxe\nexit 1\n"), h, fwBIOS); err == nil {
		t.Error("a script without a chain line gave no error")
	}
}

func TestCallbackURL(t *testing.T) {
	doc := "#cloud-config\nstages:\n  after-install:\n    - name: 'stagehand: report install complete'\n      commands:\n" +
		"        - curl -fsS -X POST --retry 5 --retry-connrefused http://10.250.4.1:8080/callback/abc-DEF_12/done || wget -q -O- --post-data= http://10.250.4.1:8080/callback/abc-DEF_12/done\n"
	got, err := callbackURL([]byte(doc))
	if want := "http://10.250.4.1:8080/callback/abc-DEF_12/done"; err != nil || got != want {
		t.Fatalf("got %q, %v; want %q", got, err, want)
	}
	if _, err := callbackURL([]byte("#cloud-config\ninstall:\n  poweroff: true\n")); err == nil {
		t.Error("user-data without a callback gave no error")
	}
	if _, err := callbackURL([]byte(`{"error":{}}`)); err == nil {
		t.Error("a JSON error body was taken for user-data")
	}
}

func TestParseStatCPU(t *testing.T) {
	for _, tc := range []struct {
		stat string
		want float64
		bad  bool
	}{
		{"4242 (stagehand) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 9 0 100 0 0", 3.25, false},
		{"7 (a) b) (c) R 1 7 7 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 1 0 0", 0.03, false},
		{"7 (x) R 1 2", 0, true},
		{"no parens at all", 0, true},
	} {
		got, err := parseStatCPU(tc.stat)
		if (err != nil) != tc.bad || (!tc.bad && got != tc.want) {
			t.Errorf("%q: got %v, %v; want %v (error %v)", tc.stat, got, err, tc.want, tc.bad)
		}
	}
}

func TestStatusKB(t *testing.T) {
	status := "Name:\tstagehand\nVmHWM:\t   42500 kB\nVmRSS:\t   11600 kB\n"
	if got := statusKB(status, "VmHWM:"); got != 42500 {
		t.Errorf("VmHWM %d", got)
	}
	if got := statusKB(status, "VmRSS:"); got != 11600 {
		t.Errorf("VmRSS %d", got)
	}
	if got := statusKB(status, "VmSwap:"); got != -1 {
		t.Errorf("missing key gave %d", got)
	}
}

func TestPercentileAndSpread(t *testing.T) {
	s := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, tc := range []struct{ p, want float64 }{{50, 5}, {99, 10}, {10, 1}, {100, 10}, {1, 1}} {
		if got := percentile(s, tc.p); float64(got) != tc.want {
			t.Errorf("p%v = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := spread([]float64{3, 1, 2}, "%.1f"); got != "2.0 (1.0–3.0)" {
		t.Errorf("spread %q", got)
	}
	if got := spread([]float64{4}, "%.0f"); got != "4" {
		t.Errorf("spread of one %q", got)
	}
}

func TestHostAddrs(t *testing.T) {
	seen := map[netip.Addr]bool{}
	rack := netip.MustParsePrefix("10.250.32.0/19")
	for i := range maxHosts {
		a := hostAddr(i)
		b := a.As4()
		if !rack.Contains(a) || b[3] == 0 || b[3] == 255 || seen[a] {
			t.Fatalf("host %d: address %v (outside %v, .0/.255, or repeated)", i, a, rack)
		}
		seen[a] = true
	}
	if got := rackHost(0).mac.String(); got != "02:52:4b:00:00:01" {
		t.Errorf("host 0 MAC %s", got)
	}
}

func TestFirmwareRequest(t *testing.T) {
	h := rackHost(7)
	fw, err := firmwareRequest(h, fwBIOS, dhcpv4.MessageTypeDiscover, false)
	if err != nil {
		t.Fatal(err)
	}
	ip, err := firmwareRequest(h, fwBIOS, dhcpv4.MessageTypeDiscover, true)
	if err != nil {
		t.Fatal(err)
	}
	if fw.TransactionID == ip.TransactionID {
		t.Error("firmware and iPXE DISCOVERs share a transaction ID")
	}
	if got := string(fw.Options.Get(dhcpv4.OptionClassIdentifier)); got != fwBIOS.vci {
		t.Errorf("option 60 %q", got)
	}
	if g := fw.Options.Get(dhcpv4.OptionClientMachineIdentifier); len(g) != 17 || g[0] != 0 {
		t.Errorf("option 97 %x", g)
	}
	if fw.Options.Has(dhcpv4.OptionUserClassInformation) || !bytes.Equal(ip.Options.Get(dhcpv4.OptionUserClassInformation), []byte("iPXE")) || !ip.Options.Has(dhcpv4.GenericOptionCode(175)) {
		t.Errorf("user class: firmware %q, iPXE %q", fw.Options.Get(dhcpv4.OptionUserClassInformation), ip.Options.Get(dhcpv4.OptionUserClassInformation))
	}
}

// TestTFTPFetch runs the client against stagehand's TFTP server on
// loopback: the bytes must arrive intact, across a blksize boundary.
func TestTFTPFetch(t *testing.T) {
	dir := t.TempDir()
	for name, size := range map[string]int{"nbp": 74213, "exact": 3 * tftpBlockSize} {
		b := make([]byte, size)
		rand.Read(b)
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &tftp.Server{Handler: tftp.Dir(dir), Log: zerolog.New(zerolog.NewTestWriter(t))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, conn) }()
	t.Cleanup(cancel)
	server := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	buf := make([]byte, 256<<10)
	for _, name := range []string{"nbp", "exact"} {
		want, _ := os.ReadFile(filepath.Join(dir, name))
		n, err := tftpFetch(netip.MustParseAddr("127.0.0.1"), server, name, buf)
		if err != nil || !bytes.Equal(buf[:n], want) {
			t.Errorf("%s: got %d bytes (%v), want the file's %d", name, n, err, len(want))
		}
	}
	if _, err := tftpFetch(netip.MustParseAddr("127.0.0.1"), server, "missing", buf); err == nil || !strings.Contains(err.Error(), "server error") {
		t.Errorf("missing file: %v", err)
	}
	// The client is done once it has sent the last ACK; the server counts
	// the transfer only when that ACK arrives. Stopping the server drains
	// transfers in flight, so after Serve returns the count is final.
	cancel()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("TFTP server did not stop")
	}
	if st := srv.Stats(); st.TransfersOK != 2 {
		t.Errorf("server counted %d good transfers, want 2", st.TransfersOK)
	}
}

func TestReport(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, v any) {
		b, _ := json.Marshal(v)
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for r, secs := range []float64{20, 30, 25} {
		res := Result{N: 1000, Concurrency: 200, RampSeconds: 3, Arch: "bios", KernelBytes: 8 << 20, InitrdBytes: 32 << 20,
			TotalSeconds: secs, OK: 1000, Steps: map[string]StepStats{"stage2": {Count: 1000, P50: float64(r + 1), P99: 10}},
			Server: ServerUsage{CPUSeconds: 17, RSSBeforeK: 12 << 10, HWMAfterK: 40 << 10}}
		write(fmt.Sprintf("load-big-1000-%d.json", r), res)
		write(fmt.Sprintf("verify-big-1000-%d.json", r), Verdict{N: 1000, Rows: 1000, Installed: 1000, EventsOK: 1000})
	}
	small := Result{N: 5000, KernelBytes: 64 << 10, InitrdBytes: 64 << 10, TotalSeconds: 10, OK: 4999, Failed: 1,
		Failures: []string{"02:52:4b:00:00:01 tftp-nbp: timeout"}, Steps: map[string]StepStats{}}
	write("load-small-5000-1.json", small)
	out := filepath.Join(dir, "rack.md")
	if err := runReport([]string{"-dir", dir, "-o", out}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(out)
	md := string(b)
	for _, want := range []string{
		"| 1000 | 3 | 25.0 (20.0–30.0) | 40 (33–50) |",
		"| stage2 | 2.0 / 10.0 |",
		"**met**: N=1000 end to end 25.0 s (target < 60 s)",
		"**met**: worst peak RSS 40.0 MB",
		"**not met**: 1 failed hosts over all runs",
		"**not met**: 1 runs with an inconsistent inventory", // the small run has no verdict file
		"failure (N=5000): `02:52:4b:00:00:01 tftp-nbp: timeout`",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if strings.Index(md, "The rack:") > strings.Index(md, "Control plane only") {
		t.Error("the realistic workload should come first")
	}
}

// TestSiteRequest sends a host's REQUEST for its site address to
// stagehand's proxyDHCP server on loopback, which reports what it
// overheard to an attribution index: the index then vouches for the
// host's MAC at its own address (stage 2 under --mac-binding strict), and
// for no other MAC there.
func TestSiteRequest(t *testing.T) {
	h := rackHost(41)
	who := attrib.New(attrib.Config{})
	seen := make(chan struct{}, 2)
	srv, err := dhcp.NewServer(dhcp.Config{
		Mode: dhcp.ModeProxy, ServerIP: net.IPv4(10, 250, 4, 1), HTTPPort: 8080,
		Log: zerolog.New(zerolog.NewTestWriter(t)),
		OnSiteAddress: func(mac net.HardwareAddr, a netip.Addr) {
			who.Observe(a, mac, attrib.SourceDHCP)
			seen <- struct{}{}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, conn) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})

	cli, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	for _, ipxe := range []bool{false, true} {
		req, err := siteRequest(h, fwBIOS, ipxe)
		if err != nil {
			t.Fatal(err)
		}
		if req.MessageType() != dhcpv4.MessageTypeRequest || !req.IsBroadcast() ||
			!net.IP(req.Options.Get(dhcpv4.OptionServerIdentifier)).Equal(siteServer) {
			t.Fatalf("site REQUEST (iPXE %v): %s", ipxe, req.Summary())
		}
		if _, err := cli.WriteTo(req.ToBytes(), conn.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		select {
		case <-seen:
		case <-time.After(10 * time.Second):
			t.Fatalf("the proxy never reported the site REQUEST (iPXE %v)", ipxe)
		}
	}
	if src, ok := who.Vouch(h.mac, h.ip); !ok || src != attrib.SourceDHCP {
		t.Fatalf("Vouch(%s, %s) = %v, %v; want dhcp", h.mac, h.ip, src, ok)
	}
	if _, ok := who.Vouch(rackHost(42).mac, h.ip); ok {
		t.Fatalf("vouched for host 42's MAC at host 41's address")
	}
}
