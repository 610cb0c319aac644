//go:build e2e

package lab_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/lab"
)

const token = "TESTTOKEN"

// installServer plays stagehand's HTTP side for the stand-in: user-data for
// one token, and a record of the callbacks.
type installServer struct {
	userdata string

	mu        sync.Mutex
	requests  []string // "METHOD PATH"
	failedMsg string
}

func (s *installServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 4096))
	s.mu.Lock()
	s.requests = append(s.requests, r.Method+" "+r.URL.Path)
	s.mu.Unlock()
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/userdata/"+token:
		io.WriteString(w, s.userdata)
	case r.Method == http.MethodPost && r.URL.Path == "/callback/"+token+"/done":
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPost && r.URL.Path == "/callback/"+token+"/failed":
		s.mu.Lock()
		s.failedMsg = string(body)
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	default:
		http.NotFound(w, r)
	}
}

func (s *installServer) count(req string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		if r == req {
			n++
		}
	}
	return n
}

func userData(base string) string {
	return fmt.Sprintf(`#cloud-config
install:
  poweroff: true
stylus:
  site:
    paletteEndpoint: api.example.invalid
    name: lab-node-1
    network:
      name: not-this-one
stages:
  after-install:
    - name: stagehand callback
      commands:
        - wget -q -O- --post-data= "%s/callback/%s/done"
`, base, token)
}

// bootStandin boots the stand-in kernel in a fresh namespace with dnsmasq
// for its lease and a Go HTTP server for its user-data and callback.
func bootStandin(t *testing.T, name, extraAppend string) (*lab.VM, *installServer, *lab.Dnsmasq) {
	kernel, initrd := lab.Artifacts(t)
	n := lab.NewNet(t, name, "10.99.0.1/24")
	dm := lab.RunDnsmasqSite(t, n.NS, n.Bridge, n.Host(100).String(), n.Host(150).String())

	base := "http://" + n.ServerIP.String() + ":8080"
	srv := &installServer{userdata: userData(base)}
	ln, err := lab.ListenIn(n.NS, "tcp4", n.ServerIP.String()+":8080")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })

	vm := lab.StartVM(t, n, lab.VMOptions{
		Kernel:  kernel,
		Initrd:  initrd,
		Append:  "console=ttyS0 panic=-1 config_url=" + base + "/userdata/" + token + " " + extraAppend,
		Timeout: 3 * time.Minute,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	if err := vm.Wait(ctx); err != nil {
		t.Fatalf("vm did not power off cleanly: %v", err)
	}
	t.Logf("stand-in boot to power-off: %s", time.Since(start).Round(100*time.Millisecond))
	for _, line := range strings.Split(vm.Log(), "\n") {
		if strings.HasPrefix(line, "STANDIN:") {
			t.Log(strings.TrimSpace(line))
		}
	}
	return vm, srv, dm
}

func TestStandinDirectKernel(t *testing.T) {
	t.Parallel()
	vm, srv, dm := bootStandin(t, "direct", "")
	log := vm.Log()
	for _, want := range []string{
		"STANDIN: dhcp ok 10.99.0.1",
		"STANDIN: config_url=http://10.99.0.1:8080/userdata/****",
		"STANDIN: userdata ok",
		"STANDIN: site.name=lab-node-1\r\n",
		"STANDIN: callback ok",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("serial log lacks %q", want)
		}
	}
	if strings.Contains(log, "STANDIN: FAIL") {
		t.Errorf("stand-in reported a failure")
	}
	if got := srv.count("GET /userdata/" + token); got != 1 {
		t.Errorf("user-data fetched %d times, want 1", got)
	}
	if got := srv.count("POST /callback/" + token + "/done"); got != 1 {
		t.Errorf("done callback received %d times, want 1", got)
	}
	if got := srv.count("POST /callback/" + token + "/failed"); got != 0 {
		t.Errorf("failed callback received %d times, want 0", got)
	}
	leases := strings.Join(dm.Leases(), "\n")
	if !strings.Contains(leases, vm.MAC) {
		t.Errorf("dnsmasq has no lease for %s: %q", vm.MAC, leases)
	}
}

func TestStandinReportsFailure(t *testing.T) {
	t.Parallel()
	vm, srv, _ := bootStandin(t, "fail", "standin.fail=1")
	log := vm.Log()
	for _, want := range []string{"STANDIN: expect-fail", "STANDIN: failed-callback ok"} {
		if !strings.Contains(log, want) {
			t.Errorf("serial log lacks %q", want)
		}
	}
	if got := srv.count("POST /callback/" + token + "/failed"); got != 1 {
		t.Errorf("failed callback received %d times, want 1", got)
	}
	if got := srv.count("POST /callback/" + token + "/done"); got != 0 {
		t.Errorf("done callback received %d times, want 0", got)
	}
	srv.mu.Lock()
	msg := srv.failedMsg
	srv.mu.Unlock()
	if !strings.Contains(msg, "standin.fail=1") {
		t.Errorf("failed callback body = %q, want the reason", msg)
	}
}

// firstDiscover reads DHCP packets on pc until a DISCOVER from mac arrives.
func firstDiscover(t *testing.T, pc net.PacketConn, mac string, within time.Duration) dhcpPacket {
	t.Helper()
	deadline := time.Now().Add(within)
	buf := make([]byte, 1500)
	for {
		pc.SetReadDeadline(deadline)
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no DHCPDISCOVER from %s: %v", mac, err)
		}
		p, ok := parseDHCP(buf[:n])
		if ok && p.msgType == 1 && p.mac == mac {
			return p
		}
	}
}

func listenDHCP(t *testing.T, n *lab.Net) net.PacketConn {
	t.Helper()
	// Wildcard bind: broadcasts never reach a socket bound to the unicast
	// address (docs/LAB.md pitfall 9).
	pc, err := lab.ListenPacketIn(n.NS, "udp4", "0.0.0.0:67")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

func TestPXEDiscoverBIOS(t *testing.T) {
	t.Parallel()
	n := lab.NewNet(t, "bios", "10.99.0.1/24")
	pc := listenDHCP(t, n)
	start := time.Now()
	vm := lab.StartVM(t, n, lab.VMOptions{Firmware: lab.BIOS, NICROM: true, Timeout: 2 * time.Minute})
	p := firstDiscover(t, pc, vm.MAC, 90*time.Second)
	t.Logf("BIOS: first DHCPDISCOVER after %s", time.Since(start).Round(100*time.Millisecond))
	// The NIC ROM is iPXE itself (docs/LAB.md): user-class "iPXE".
	if p.userClass != "iPXE" {
		t.Errorf("user class = %q, want iPXE", p.userClass)
	}
	if vc := p.vendorClass; !strings.HasPrefix(vc, "PXEClient:Arch:00000") {
		t.Errorf("vendor class = %q, want PXEClient:Arch:00000…", vc)
	}
	if err := vm.WaitFor(context.Background(), `iPXE`); err != nil {
		t.Errorf("iPXE banner not on the serial console: %v", err)
	}
	vm.Kill()
	if err := vm.Wait(context.Background()); err == nil || errors.Is(err, lab.ErrTimeout) {
		t.Errorf("Wait after Kill = %v, want the kill reported", err)
	}
}

func TestPXEDiscoverUEFI(t *testing.T) {
	t.Parallel()
	n := lab.NewNet(t, "uefi", "10.99.0.1/24")
	pc := listenDHCP(t, n)
	start := time.Now()
	vm := lab.StartVM(t, n, lab.VMOptions{Firmware: lab.UEFI, Timeout: 2 * time.Minute})
	p := firstDiscover(t, pc, vm.MAC, 110*time.Second)
	t.Logf("UEFI: first DHCPDISCOVER after %s", time.Since(start).Round(100*time.Millisecond))
	// No NIC ROM: OVMF's own PXE client, x64 UEFI arch 7, no user class.
	if vc := p.vendorClass; !strings.HasPrefix(vc, "PXEClient:Arch:00007") {
		t.Errorf("vendor class = %q, want PXEClient:Arch:00007…", vc)
	}
	if p.userClass != "" {
		t.Errorf("user class = %q, want none from OVMF", p.userClass)
	}
}

// TestPeerDHCP checks the proxyDHCP topology: dnsmasq in a peer namespace
// answers a DHCP client on the main bridge (busybox udhcpc in the server
// namespace, on a veth of its own, stands in for a host).
func TestPeerDHCP(t *testing.T) {
	t.Parallel()
	n := lab.NewNet(t, "peer", "10.99.0.1/24")
	site := n.AddPeer(t, "site", "10.99.0.2/24")
	lab.RunDnsmasqSite(t, site, "eth0", "10.99.0.100", "10.99.0.110")
	client := n.AddPeer(t, "client", "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", client,
		"busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-t", "5", "-s", "/bin/true").CombinedOutput()
	if err != nil {
		t.Fatalf("udhcpc via the peer's dnsmasq: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "lease of 10.99.0.1") || !strings.Contains(string(out), "obtained from 10.99.0.2") {
		t.Errorf("udhcpc output %q, want a lease in 10.99.0.100-110 from 10.99.0.2", out)
	}
}
