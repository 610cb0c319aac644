package dhcp

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// needTool fails (never skips) when a client binary is missing.
func needTool(t *testing.T, bin, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(bin)
	if err != nil {
		t.Fatalf("%s not found: install the Debian package %s", bin, pkg)
	}
	return p
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// netns creates a network namespace removed when the test ends, with lo up.
func netns(t *testing.T, name string) string {
	t.Helper()
	ns := fmt.Sprintf("shd-%s-%d", name, os.Getpid())
	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() {
		// Processes we started are killed by their own cleanups first
		// (t.Cleanup is LIFO); the namespace goes last.
		exec.Command("ip", "netns", "del", ns).Run()
	})
	run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	return ns
}

// inNetns runs f on an OS thread switched into ns. Sockets created by f
// stay in ns after the thread switches back.
func inNetns(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			errc <- err
			runtime.UnlockOSThread()
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- err
			runtime.UnlockOSThread()
			return
		}
		err = f()
		// If switching back fails the thread stays locked and dies with
		// this goroutine, so no other goroutine runs in ns by accident.
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

func hwaddr(t *testing.T, ns, ifname string) net.HardwareAddr {
	t.Helper()
	out, err := exec.Command("ip", "-n", ns, "-br", "link", "show", ifname).Output()
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(out))
	if len(f) < 3 {
		t.Fatalf("ip link: %q", out)
	}
	m, err := net.ParseMAC(f[2])
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// serveIn runs s on ListenUDP(ifname, port) inside ns until the test ends.
func serveIn(t *testing.T, s *Server, ns, ifname string, port int) {
	t.Helper()
	var conn net.PacketConn
	if err := inNetns(ns, func() (err error) {
		conn, err = ListenUDP(ifname, port)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, conn) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
}

// busybox udhcpc in one namespace gets a lease from the full-mode server
// in another, over a veth pair.
func TestInteropUdhcpc(t *testing.T) {
	bb := needTool(t, "busybox", "busybox-static")
	needTool(t, "ip", "iproute2")
	srv, cli := netns(t, "srv"), netns(t, "cli")
	run(t, "ip", "-n", srv, "link", "add", "vs0", "type", "veth", "peer", "name", "vc0", "netns", cli)
	run(t, "ip", "-n", srv, "addr", "add", "192.168.77.1/24", "dev", "vs0")
	run(t, "ip", "-n", srv, "link", "set", "vs0", "up")
	run(t, "ip", "-n", cli, "link", "set", "vc0", "up")

	store := &MemLeases{}
	cfg := testConfig(ModeFull)
	cfg.Leases = store
	cfg.Log = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel)
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	serveIn(t, s, srv, "vs0", ServerPort)

	dir := t.TempDir()
	envFile := filepath.Join(dir, "bound.env")
	script := filepath.Join(dir, "script.sh")
	os.WriteFile(script, []byte("#!/bin/sh\n[ \"$1\" = bound ] && env > "+envFile+"\nexit 0\n"), 0o755)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", cli, bb, "udhcpc",
		"-i", "vc0", "-n", "-q", "-f", "-t", "5", "-T", "1", "-s", script, "-x", "hostname:node7")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("udhcpc: %v\n%s", err, out)
	}
	env, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatalf("udhcpc never bound: %v\n%s", err, out)
	}
	vars := map[string]string{}
	for _, l := range strings.Split(string(env), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			vars[k] = v
		}
	}
	ip, err := netip.ParseAddr(vars["ip"])
	if err != nil || !cfg.Ranges[0].holds(ip) {
		t.Fatalf("udhcpc got ip=%q, want one in %v\n%s", vars["ip"], cfg.Ranges[0], env)
	}
	if vars["serverid"] != "192.168.77.1" || vars["subnet"] != "255.255.255.0" || vars["router"] != "192.168.77.254" ||
		vars["lease"] != "7200" || !strings.Contains(vars["dns"], "192.168.77.53") {
		t.Errorf("udhcpc options: %s", env)
	}
	l, ok := store.Lease(hwaddr(t, cli, "vc0"))
	if !ok || l.IP != ip || l.Hostname != "node7" {
		t.Errorf("stored lease = %+v, %v; want %v for node7", l, ok, ip)
	}
}

// A PXE client beside a site DHCP server (dnsmasq) and our proxyDHCP: it
// must get an address offer from dnsmasq and a boot offer without an
// address from us. Three namespaces on a bridge, as three hosts.
func TestInteropProxyBesideDnsmasq(t *testing.T) {
	dnsmasq := needTool(t, "dnsmasq", "dnsmasq-base")
	needTool(t, "ip", "iproute2")
	prx, site, cli := netns(t, "prx"), netns(t, "site"), netns(t, "pcl")
	run(t, "ip", "-n", prx, "link", "add", "br0", "type", "bridge", "forward_delay", "0")
	run(t, "ip", "-n", prx, "link", "add", "ps", "type", "veth", "peer", "name", "vs", "netns", site)
	run(t, "ip", "-n", prx, "link", "add", "pc", "type", "veth", "peer", "name", "vc", "netns", cli)
	for _, l := range []string{"ps", "pc"} {
		run(t, "ip", "-n", prx, "link", "set", l, "master", "br0")
		run(t, "ip", "-n", prx, "link", "set", l, "up")
	}
	run(t, "ip", "-n", prx, "addr", "add", "192.168.88.1/24", "dev", "br0")
	run(t, "ip", "-n", prx, "link", "set", "br0", "up")
	run(t, "ip", "-n", site, "addr", "add", "192.168.88.2/24", "dev", "vs")
	run(t, "ip", "-n", site, "link", "set", "vs", "up")
	run(t, "ip", "-n", cli, "link", "set", "vc", "up")

	// The site DHCP server.
	dir := t.TempDir()
	dctx, dcancel := context.WithCancel(context.Background())
	var dout bytes.Buffer
	dm := exec.CommandContext(dctx, "ip", "netns", "exec", site, dnsmasq, "--no-daemon", "--port=0",
		"--conf-file=/dev/null", "--interface=vs", "--bind-interfaces", "--user=root", "--log-dhcp",
		"--no-ping", // dnsmasq pings before offering: 3 s per run (docs/LAB.md pitfall 4)
		"--dhcp-range=192.168.88.100,192.168.88.150,255.255.255.0,1h",
		"--dhcp-leasefile="+filepath.Join(dir, "leases"), "--pid-file="+filepath.Join(dir, "pid"))
	dm.Stdout, dm.Stderr = &dout, &dout
	if err := dm.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		dcancel() // kills ip netns exec, which exec'd dnsmasq: same PID
		dm.Wait()
		if t.Failed() {
			t.Logf("dnsmasq:\n%s", dout.String())
		}
	})

	cfg := Config{Mode: ModeProxy, ServerIP: net.IPv4(192, 168, 88, 1),
		Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel)}
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	serveIn(t, s, prx, "br0", ServerPort)

	// The PXE client: a firmware-like DISCOVER from the client's MAC.
	var conn net.PacketConn
	if err := inNetns(cli, func() (err error) {
		conn, err = ListenUDP("vc", ClientPort)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	disc := loadPacket(t, "bios-pxe-discover")
	disc.ClientHWAddr = hwaddr(t, cli, "vc")
	disc.SetBroadcast()                   // the client has no address to receive unicast on
	offers := map[string]*dhcpv4.DHCPv4{} // by server identifier
	deadline := time.Now().Add(20 * time.Second)
	buf := make([]byte, 2048)
	for len(offers) < 2 && time.Now().Before(deadline) {
		// Retransmit like firmware: dnsmasq may not be listening yet.
		if _, err := conn.WriteTo(disc.ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: ServerPort}); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(time.Second))
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				break
			}
			p, err := dhcpv4.FromBytes(buf[:n])
			if err != nil || p.TransactionID != disc.TransactionID || p.OpCode != dhcpv4.OpcodeBootReply {
				continue
			}
			offers[p.ServerIdentifier().String()] = p
		}
	}
	site4, ours := offers["192.168.88.2"], offers["192.168.88.1"]
	if site4 == nil || ours == nil {
		t.Fatalf("offers from %v, want dnsmasq (192.168.88.2) and us (192.168.88.1)", keys(offers))
	}
	if a, _ := netip.AddrFromSlice(site4.YourIPAddr.To4()); site4.MessageType() != dhcpv4.MessageTypeOffer ||
		!netip.MustParsePrefix("192.168.88.0/24").Contains(a) || a == netip.MustParseAddr("192.168.88.0") {
		t.Errorf("dnsmasq offer: %v", site4.Summary())
	}
	if ours.MessageType() != dhcpv4.MessageTypeOffer || !ours.YourIPAddr.IsUnspecified() ||
		ours.ClassIdentifier() != "PXEClient" || ours.BootFileName != "undionly.kpxe" ||
		!ours.ServerIPAddr.Equal(net.IPv4(192, 168, 88, 1)) ||
		!bytes.Equal(ours.Options.Get(dhcpv4.OptionClientMachineIdentifier), disc.Options.Get(dhcpv4.OptionClientMachineIdentifier)) {
		t.Errorf("proxy offer: %v", ours.Summary())
	}
}

func keys(m map[string]*dhcpv4.DHCPv4) []string {
	var k []string
	for s := range m {
		k = append(k, s)
	}
	return k
}
