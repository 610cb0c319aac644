//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/lab"
)

var binary string

func TestMain(m *testing.M) { lab.MainWithStagehand(m, &binary) }

// server is a stagehand serve process inside a lab namespace.
type server struct {
	*lab.Process
	t       *testing.T
	n       *lab.Net
	dataDir string
	url     string
}

func startServer(t *testing.T, n *lab.Net, args ...string) *server {
	t.Helper()
	// No RA sender of the lab's own: iPXE's wait for an IPv6 router
	// (docs/LAB.md pitfall 3) is stagehand's to answer, as on a site.
	s := &server{t: t, n: n, dataDir: t.TempDir(), url: fmt.Sprintf("http://%s:8080", n.ServerIP)}
	s.Process = lab.Start(t, n.NS, binary, append([]string{"serve",
		"--interface", n.Bridge, "--data-dir", s.dataDir, "--http-port", "8080", "--log-level", "debug"}, args...)...)
	// Before lab's own cleanup: stagehand must stop on SIGINT, in time.
	t.Cleanup(func() {
		if !s.StopWithin(syscall.SIGINT, 15*time.Second) {
			t.Errorf("stagehand did not stop within 15s of SIGINT")
		}
	})
	// Ready when the API answers.
	s.WaitReady(t, "answering its API", 20*time.Second, func() bool {
		_, err := s.cliErr("status")
		return err == nil
	})
	return s
}

// cliErr runs the stagehand CLI inside the namespace against the server.
func (s *server) cliErr(args ...string) (string, error) {
	full := append([]string{"netns", "exec", s.n.NS, binary}, args...)
	full = append(full, "--server", s.url, "--data-dir", s.dataDir)
	var out, errb bytes.Buffer
	cmd := exec.Command("ip", full...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("stagehand %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

func (s *server) cli(args ...string) string {
	s.t.Helper()
	out, err := s.cliErr(args...)
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

type hostView struct {
	MAC       string `json:"mac"`
	Name      string `json:"name"`
	State     string `json:"state"`
	Attempt   int    `json:"attempt"`
	LastIP    string `json:"lastIP"`
	FailedMsg string `json:"failedMessage"`
}

func (s *server) host(mac string) hostView {
	s.t.Helper()
	var h hostView
	if err := json.Unmarshal([]byte(s.cli("host", "show", mac, "--output", "json")), &h); err != nil {
		s.t.Fatal(err)
	}
	return h
}

type event struct {
	Time   time.Time `json:"time"`
	Kind   string    `json:"kind"`
	Detail string    `json:"detail"`
}

func (s *server) events(mac string) []event {
	s.t.Helper()
	var ev []event
	if err := json.Unmarshal([]byte(s.cli("host", "events", mac, "--output", "json")), &ev); err != nil {
		s.t.Fatal(err)
	}
	return ev
}

func countKind(ev []event, kind string) int {
	n := 0
	for _, e := range ev {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

// tftpBeforeBooting reports whether a TFTP transfer of file is recorded
// before the host's first "booting" event: the first boot's transfer,
// which in proxy mode is tied to the host by the address its REQUEST to
// the site server named (dhcp.Config.OnSiteAddress), or, when that frame
// was not overheard, by the kernel's neighbour table (package neigh).
func tftpBeforeBooting(ev []event, file string) bool {
	for _, e := range ev {
		switch {
		case e.Kind == "tftp" && strings.Contains(e.Detail, file):
			return true
		case e.Kind == "booting":
			return false
		}
	}
	return false
}

// proxyLab is the set-up the proxyDHCP boots share: a lab network
// 10.99.SUBNET.0/24 named name, the site's DHCP server (dnsmasq) on .2
// handing out .100-.150, and stagehand on .1 in proxy mode (plus args)
// with the lab profile "lab".
func proxyLab(t *testing.T, name, subnet string, args ...string) *server {
	t.Helper()
	net := "10.99." + subnet + "."
	n := lab.NewNet(t, name, net+"1/24")
	site := n.AddPeer(t, "site", net+"2/24")
	lab.RunDnsmasqSite(t, site, "eth0", net+"100", net+"150")
	s := startServer(t, n, append([]string{"--dhcp-mode", "proxy"}, args...)...)
	s.addLabProfile("lab", "")
	return s
}

// addLabProfile registers the lab kernel and the installer stand-in.
func (s *server) addLabProfile(name, extraCmdline string) {
	kernel, initrd := lab.Artifacts(s.t)
	ud := filepath.Join(s.t.TempDir(), "base.yaml")
	os.WriteFile(ud, []byte("stylus:\n  site:\n    paletteEndpoint: api.spectrocloud.example\n    projectUid: lab-project\n    edgeHostToken: LABTOKEN-do-not-log\ninstall:\n  poweroff: true\n"), 0o644)
	cmdline := strings.TrimSpace("console=ttyS0 panic=-1 " + extraCmdline)
	s.cli("profile", "add", name, "--kernel", kernel, "--initrd", initrd, "--cmdline", cmdline, "--userdata", ud)
}

// installThenLocal boots a VM to completion, checks the inventory, boots
// it again and checks that the second boot goes to local disk. It returns
// the first boot's serial log.
func installThenLocal(t *testing.T, s *server, opts lab.VMOptions, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()

	vm := lab.StartVM(t, s.n, opts)
	if err := vm.WaitFor(ctx, `STANDIN: site\.name=`+name); err != nil {
		t.Fatalf("installer stand-in never saw its user-data: %v", err)
	}
	if err := vm.Wait(ctx); err != nil {
		t.Fatalf("first boot: %v", err)
	}
	log := vm.Log()
	if !strings.Contains(log, "STANDIN: callback ok") {
		t.Fatalf("stand-in did not report completion; serial tail:\n%s", lab.Tail(log, 30))
	}
	h := s.host(opts.MAC)
	if h.State != "installed" || h.Attempt != 1 {
		t.Fatalf("after install: host %s state %q attempt %d, want installed attempt 1", opts.MAC, h.State, h.Attempt)
	}
	ev := s.events(opts.MAC)
	for _, kind := range []string{"dhcp", "booting", "userdata", "installed"} {
		if countKind(ev, kind) == 0 {
			t.Errorf("no %q event recorded; events: %+v", kind, ev)
		}
	}
	if strings.Contains(mustRead(t, s.LogPath), "LABTOKEN-do-not-log") {
		t.Errorf("the edgeHostToken appeared in the server log")
	}

	// Second boot of the same machine: stage 2 must say "local disk".
	vm2 := lab.StartVM(t, s.n, opts)
	if err := vm2.WaitFor(ctx, `stagehand: booting local disk`); err != nil {
		t.Fatalf("second boot did not take the local-boot path: %v", err)
	}
	vm2.Kill()
	if strings.Contains(vm2.Log(), "STANDIN:") {
		t.Fatalf("second boot started the installer")
	}
	h = s.host(opts.MAC)
	ev = s.events(opts.MAC)
	if h.State != "installed" || h.Attempt != 1 || countKind(ev, "booting") != 1 || countKind(ev, "localboot") == 0 {
		t.Fatalf("after second boot: state %q attempt %d, booting events %d, localboot events %d; want installed, 1, 1, ≥1",
			h.State, h.Attempt, countKind(ev, "booting"), countKind(ev, "localboot"))
	}
	return log
}

func mustRead(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// BIOS firmware, proxyDHCP beside dnsmasq as the site's DHCP server. The
// iPXE in QEMU's NIC ROM does the DHCP, takes its address from dnsmasq
// and its boot script from stagehand.
func TestBIOSProxy(t *testing.T) {
	s := proxyLab(t, "bios", "1")
	mac := "52:54:00:e2:01:01"
	s.cli("host", "add", mac, "--profile", "lab", "--name", "rack1-node1", "--serial", "SN-BIOS-1")
	installThenLocal(t, s, lab.VMOptions{Firmware: lab.BIOS, MAC: mac, NICROM: true}, "rack1-node1")
	h := s.host(mac)
	if !strings.HasPrefix(h.LastIP, "10.99.1.1") || h.LastIP == "10.99.1.1" {
		t.Errorf("host's last IP %q is not from the site DHCP server's range", h.LastIP)
	}
}

// UEFI firmware with the NIC ROM disabled: OVMF's own PXE client gets a
// proxy offer from stagehand, fetches snponly.efi over stagehand's TFTP,
// and that iPXE then asks again and gets the HTTP script.
func TestUEFIProxyTFTP(t *testing.T) {
	s := proxyLab(t, "uefi", "2")
	mac := "52:54:00:e2:02:01"
	s.cli("host", "add", mac, "--profile", "lab", "--name", "rack1-node2")
	installThenLocal(t, s, lab.VMOptions{Firmware: lab.UEFI, MAC: mac, NICROM: false}, "rack1-node2")
	if ev := s.events(mac); !tftpBeforeBooting(ev, "snponly.efi") {
		t.Errorf("the first boot's TFTP transfer of snponly.efi is not recorded on the host; events: %+v", ev)
	}
}

// Full DHCP on an isolated network: stagehand is the only DHCP server.
func TestFullDHCP(t *testing.T) {
	n := lab.NewNet(t, "full", "10.99.3.1/24")
	mac := "52:54:00:e2:03:01"
	s := fullInstall(t, n, "3", lab.VMOptions{Firmware: lab.BIOS, MAC: mac, NICROM: true})
	h := s.host(mac)
	if !strings.HasPrefix(h.LastIP, "10.99.3.5") && !strings.HasPrefix(h.LastIP, "10.99.3.60") {
		t.Errorf("host's last IP %q is not from stagehand's pool", h.LastIP)
	}
	s.checkTimeline(mac, "ipxe-dhcp", "stage1", "stage2", "kernel", "initrd", "userdata", "done")
}

// Full DHCP, UEFI firmware PXE: OVMF's own client gets snponly.efi over
// TFTP, and that iPXE does its own DHCP and IPv6 configuration again.
func TestUEFIFullDHCP(t *testing.T) {
	n := lab.NewNet(t, "ufull", "10.99.12.1/24")
	mac := "52:54:00:e2:12:01"
	s := fullInstall(t, n, "12", lab.VMOptions{Firmware: lab.UEFI, MAC: mac, NICROM: false})
	s.checkTimeline(mac, "firmware-dhcp", "boot-file", "ipxe-dhcp", "stage1", "stage2", "kernel", "initrd", "userdata", "done")
}

// fullInstall runs stagehand in full DHCP mode on n (10.99.SUBNET.1/24,
// pool .50-.60) and installs opts.MAC, named rack1-nodeSUBNET, with the
// lab profile, then boots it again to local disk (installThenLocal).
func fullInstall(t *testing.T, n *lab.Net, subnet string, opts lab.VMOptions) *server {
	t.Helper()
	pool := "10.99." + subnet + "."
	s := startServer(t, n, "--dhcp-mode", "full", "--dhcp-range", pool+"50-"+pool+"60")
	s.addLabProfile("lab", "")
	s.cli("host", "add", opts.MAC, "--profile", "lab", "--name", "rack1-node"+subnet)
	installThenLocal(t, s, opts, "rack1-node"+subnet)
	return s
}

// A site with its own IPv6 router: stagehand sends no advertisement
// (its router answers iPXE), says so once, and the host installs.
func TestIPv6RouterOnLink(t *testing.T) {
	n := lab.NewNet(t, "rtr6", "10.99.13.1/24")
	lab.RunIPv6Router(t, n)
	s := fullInstall(t, n, "13", lab.VMOptions{Firmware: lab.BIOS, MAC: "52:54:00:e2:13:01", NICROM: true})
	m := s.metrics()
	if m["stagehand_ipv6_ra_standing_down"] != 1 || m["stagehand_ipv6_ra_sent_total"] != 0 {
		t.Errorf("with a router on the link: standing_down %v, sent_total %v; want 1 and 0",
			m["stagehand_ipv6_ra_standing_down"], m["stagehand_ipv6_ra_sent_total"])
	}
	if got := m[`stagehand_ipv6_rs_unanswered_total{reason="router_present"}`]; got == 0 {
		t.Errorf("no router solicitation left to the router: iPXE's were not seen")
	}
	if !strings.Contains(mustRead(t, s.LogPath), "an IPv6 router advertises on this link") {
		t.Errorf("stagehand's log does not say it stood down for the router")
	}
}

// metrics scrapes /metrics inside the lab namespace: each sample by its
// name with labels as written.
func (s *server) metrics() map[string]float64 {
	s.t.Helper()
	tok := strings.TrimSpace(mustRead(s.t, filepath.Join(s.dataDir, "api-token")))
	req, _ := http.NewRequest(http.MethodGet, s.url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := lab.ClientIn(s.n.NS).Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if f, err := strconv.ParseFloat(v, 64); ok && err == nil && !strings.HasPrefix(name, "#") {
			m[name] = f
		}
	}
	return m
}
