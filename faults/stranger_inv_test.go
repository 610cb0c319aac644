package faults

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// A stranger on the provisioning network, against the inventory: what it
// reports for a finished host, the history it floods, the records it
// invents under --unknown-hosts discover (issue 10, items 4 to 6). The
// stranger is another loopback address; --mac-binding off stands in for
// a network where naming a MAC is enough (NAT, an HTTP proxy, or an
// attacker who answers ARP for it).

// invClient is an HTTP client whose connections come from ip.
func invClient(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

// invStage2 is the stage-2 request stage 1 makes, with these facts.
func invStage2(s *server, mac, serial, product string) string {
	q := url.Values{"mac": {mac}, "serial": {serial}, "product": {product}, "manufacturer": {"QEMU"}, "buildarch": {"x86_64"}, "platform": {"efi"}}
	return s.url() + "/ipxe?" + q.Encode()
}

// invInstall plays mac's real install from 127.0.0.1, with a user-data
// request from another address refused on the way.
func invInstall(t *testing.T, s *server, mac, serial string) {
	t.Helper()
	c := invClient("127.0.0.1")
	body, err := get(c, invStage2(s, mac, serial, "Edge 1000"))
	if err != nil {
		t.Fatal(err)
	}
	m := tokenRe.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no token in the install script:\n%s", body)
	}
	if _, err := get(invClient("127.0.0.66"), s.url()+"/userdata/"+m[1]); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("user-data from another address: %v, want 403", err)
	}
	in := &installer{mac: mac, token: m[1], acked: 1}
	for in.acked < 3 {
		if err := in.step(c, s.url()); err != nil {
			t.Fatal(err)
		}
	}
}

// invEvent is a stored event as `host events -o json` prints it.
type invEvent struct {
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
	Count  int    `json:"count"`
}

func invEvents(t *testing.T, s *server, mac string) []invEvent {
	t.Helper()
	out, err := s.cli("host", "events", mac, "-o", "json")
	if err != nil {
		t.Fatalf("host events: %v\n%s", err, out)
	}
	var ev []invEvent
	if err := json.Unmarshal([]byte(out), &ev); err != nil {
		t.Fatalf("host events: %v\n%s", err, out)
	}
	return ev
}

// invWaitEvents polls mac's events (the recorder commits after the
// answer) until ok accepts them; 15 s only catches a hang.
func invWaitEvents(t *testing.T, s *server, mac string, ok func([]invEvent) bool) []invEvent {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ev := invEvents(t, s, mac)
		if ok(ev) {
			return ev
		}
		if time.Now().After(deadline) {
			t.Fatalf("events of %s never came: %+v", mac, ev)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func invKinds(ev []invEvent) map[string]int {
	m := map[string]int{}
	for _, e := range ev {
		m[e.Kind]++
	}
	return m
}

// invSnapshot is what an operator and the warehouse see of the host.
func invSnapshot(t *testing.T, s *server, mac string) string {
	t.Helper()
	show, err := s.cli("host", "show", mac, "-o", "json")
	if err != nil {
		t.Fatalf("host show: %v\n%s", err, show)
	}
	csv, err := s.cli("host", "export", "--format", "csv")
	if err != nil {
		t.Fatalf("host export: %v\n%s", err, csv)
	}
	js, err := s.cli("host", "export", "--format", "json")
	if err != nil {
		t.Fatalf("host export: %v\n%s", err, js)
	}
	return show + "\n" + csv + "\n" + js
}

// Stage 2 for an installed host, from a stranger reporting another
// serial: one event, nothing else changes (the report, host show). Then
// 240 such requests with a new serial each cannot push the host's
// created, installed, user-data and user-data-refused events out of its
// history, and 50 identical ones are one event with a count.
func TestStrangerStage2FinishedHost(t *testing.T) {
	s := newServer(t)
	s.args = append(s.args, "--mac-binding", "off", "--userdata-ip-binding=true")
	s.start()
	s.addProfile("edge", 1024)
	const mac = "52:54:00:5a:00:01"
	if out, err := s.cli("host", "add", mac, "--profile", "edge", "--name", "rack1-n1", "--serial", "SN-REAL"); err != nil {
		t.Fatalf("host add: %v\n%s", err, out)
	}
	invInstall(t, s, mac, "SN-REAL")
	before := invSnapshot(t, s, mac)
	if !strings.Contains(before, "SN-REAL") || !strings.Contains(before, "installed") {
		t.Fatalf("the installed host's report lacks its serial or state:\n%s", before)
	}
	n := len(invEvents(t, s, mac))

	stranger := invClient("127.0.0.77")
	if _, err := get(stranger, invStage2(s, mac, `=HYPERLINK("http://x","SN")`, "Forged")); err != nil {
		t.Fatal(err)
	}
	invWaitEvents(t, s, mac, func(ev []invEvent) bool { return len(ev) > n })
	time.Sleep(300 * time.Millisecond) // a second event, if any, is committed by now
	if ev := invEvents(t, s, mac); len(ev) != n+1 || !strings.Contains(ev[n].Detail, "127.0.0.77") {
		t.Errorf("stage 2 of the installed host wrote %d events, want 1 naming the address: %+v", len(ev)-n, ev[n:])
	}
	if after := invSnapshot(t, s, mac); after != before {
		t.Errorf("a stranger's stage 2 changed the installed host:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// The flood: a new serial each time, from a few addresses.
	var wg sync.WaitGroup
	for a := range 4 {
		wg.Go(func() {
			c := invClient(fmt.Sprintf("127.0.1.%d", a+1))
			for i := range 60 {
				if _, err := get(c, invStage2(s, mac, fmt.Sprintf("FORGED-%d-%d", a, i), "Forged")); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for range 50 {
		if _, err := get(stranger, invStage2(s, mac, "SAME", "Forged")); err != nil {
			t.Fatal(err)
		}
	}
	ev := invWaitEvents(t, s, mac, func(ev []invEvent) bool {
		for _, e := range ev[max(0, len(ev)-3):] {
			if strings.Contains(e.Detail, "SAME") {
				return true
			}
		}
		return false
	})
	time.Sleep(300 * time.Millisecond) // the recorder's last commit
	ev = invEvents(t, s, mac)
	k := invKinds(ev)
	t.Logf("after 290 stranger requests: %d events kept: %v", len(ev), k)
	for _, want := range []string{"created", "booting", "userdata", "userdata-refused", "installed"} {
		if k[want] == 0 {
			t.Errorf("the %s event is gone after 290 stage-2 requests: %v", want, k)
		}
	}
	invWaitEvents(t, s, mac, func(ev []invEvent) bool {
		last := ev[len(ev)-1]
		return strings.Contains(last.Detail, "SAME") && last.Count == 50
	})
	table, err := s.cli("host", "events", mac)
	if err != nil || !strings.Contains(table, "50 times") {
		t.Errorf("host events does not show the count: %v\n%s", err, table)
	}
	if after := invSnapshot(t, s, mac); after != before {
		t.Errorf("the flood changed the installed host:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// --unknown-hosts discover under 2 000 invented MACs with maximal facts
// from 100 addresses: at most --discover-per-address records per address
// and --discover-max in all (the defaults), the refusals counted; the
// real host whose serial they all report gets one serial-match event; a
// squatted MAC does not block host add of the real machine; a bulk
// assign of a profile with secrets to the discovered hosts changes
// nothing without --yes.
func TestStrangerDiscovery(t *testing.T) {
	s := newServer(t)
	s.args = append(s.args, "--mac-binding", "off", "--unknown-hosts", "discover")
	s.start()
	s.addProfile("edge", 1024)
	const real, squatted = "52:54:00:5b:00:01", "52:54:00:5b:00:02"
	if out, err := s.cli("host", "add", real, "--profile", "edge", "--name", "rack1-n1", "--serial", "SN-REAL"); err != nil {
		t.Fatalf("host add: %v\n%s", err, out)
	}
	db := filepath.Join(s.dataDir, "stagehand.db")
	size0 := invFileSize(t, db)

	// The squatter names the real machine's MAC before it is added.
	if _, err := get(invClient("127.0.2.1"), invStage2(s, squatted, "SQUAT-1", "Laptop")); err != nil {
		t.Fatal(err)
	}
	// 2 000 invented MACs: 100 each from 10 addresses (the per-address
	// bound binds), then 10 each from 100 more (the total bound binds).
	start := time.Now()
	s.inventMACs(0, 10, 100)
	s.inventMACs(10, 100, 10)
	const invented = 2000
	t.Logf("%d stage-2 requests for invented MACs from 110 addresses in %v", invented, time.Since(start).Round(time.Millisecond))

	out, err := s.cli("host", "list", "--state", "discovered", "-o", "json")
	if err != nil {
		t.Fatalf("host list: %v\n%s", err, out)
	}
	var hosts []struct {
		MAC    string `json:"mac"`
		LastIP string `json:"lastIP"`
	}
	if err := json.Unmarshal([]byte(out), &hosts); err != nil {
		t.Fatalf("host list: %v\n%s", err, out)
	}
	perIP := map[string]int{}
	for _, h := range hosts {
		perIP[h.LastIP]++
	}
	for ip, n := range perIP {
		if n > 16 {
			t.Errorf("%s created %d discovered records in under an hour, want at most 16", ip, n)
		}
	}
	size1 := invFileSize(t, db)
	m := s.metrics()
	t.Logf("discovered records: %d of %d invented MACs; database %d KiB → %d KiB; refused: %v total, %v per address",
		len(hosts), invented, size0>>10, size1>>10, m[`stagehand_discovery_refused_total{reason="total"}`], m[`stagehand_discovery_refused_total{reason="address"}`])
	if len(hosts) > 1024 {
		t.Errorf("%d discovered records, want at most 1024", len(hosts))
	}
	if refused := m[`stagehand_discovery_refused_total{reason="total"}`] + m[`stagehand_discovery_refused_total{reason="address"}`]; int(refused) != invented+1-len(hosts) {
		t.Errorf("%v refusals counted, want %d", refused, invented+1-len(hosts))
	}
	if size1 > 6<<20 {
		t.Errorf("database grew to %d KiB", size1>>10)
	}

	// One serial-match event on the real host, however many reported it.
	ev := invEvents(t, s, real)
	if k := invKinds(ev); k["serial-match"] != 1 {
		t.Errorf("the real host has %d serial-match events, want 1: %v", k["serial-match"], k)
	}

	// A bulk assign of a profile with secrets lists the discovered hosts
	// and changes nothing without --yes.
	s.addSecretProfile("secret")
	out, err = s.cli("host", "assign", "--profile", "secret", "--state", "discovered")
	if err == nil || !strings.Contains(out, fmt.Sprintf("%d of these hosts are only discovered", len(hosts))) || !strings.Contains(out, "02:5b:00:00:00:00") {
		t.Errorf("host assign of a profile with secrets over discovered hosts, without --yes: err %v, want a refusal listing them:\n%s", err, out)
	}
	if after, _ := s.cli("host", "list", "--state", "discovered", "-o", "json"); strings.Count(after, `"mac"`) != len(hosts) {
		t.Errorf("host assign without --yes changed the discovered hosts: %d left of %d", strings.Count(after, `"mac"`), len(hosts))
	}

	// The real machine is added on the squatted MAC.
	if out, err := s.cli("host", "add", squatted, "--profile", "edge", "--name", "rack1-n2", "--serial", "SN-2"); err != nil {
		t.Fatalf("host add over a discovered MAC: %v\n%s", err, out)
	}
	ev = invEvents(t, s, squatted)
	if last := ev[len(ev)-1]; last.Kind != "takeover" || !strings.Contains(last.Detail, "SQUAT-1") {
		t.Errorf("host add over the squatted MAC: last event %+v, want a takeover naming what the squatter reported", last)
	}
	if show, _ := s.cli("host", "show", squatted, "-o", "json"); strings.Contains(show, "SQUAT-1") || !strings.Contains(show, `"ready"`) {
		t.Errorf("the added host still carries the squatter's facts or is not ready:\n%s", show)
	}
}

// inventMACs sends stage 2 for perAddr invented MACs, with the longest
// facts stage 2 accepts, from each of n loopback addresses from the
// first-th on, the addresses at once.
func (s *server) inventMACs(first, n, perAddr int) {
	long := strings.Repeat("f", 128)
	var wg sync.WaitGroup
	for a := first; a < first+n; a++ {
		wg.Go(func() {
			c := invClient(fmt.Sprintf("127.0.3.%d", a+1))
			for i := range perAddr {
				q := url.Values{"mac": {fmt.Sprintf("02:5b:%02x:00:00:%02x", a, i)}, "serial": {"SN-REAL"}, "uuid": {long},
					"manufacturer": {long}, "product": {long}, "buildarch": {"x86_64"}, "platform": {"efi"}}
				if _, err := get(c, s.url()+"/ipxe?"+q.Encode()); err != nil {
					s.t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// addSecretProfile registers a profile whose user-data carries an
// edgeHostToken.
func (s *server) addSecretProfile(name string) {
	s.t.Helper()
	dir := s.t.TempDir()
	for _, f := range []string{"kernel", "initrd"} {
		os.WriteFile(filepath.Join(dir, f), []byte(f), 0o644)
	}
	ud := filepath.Join(dir, "base.yaml")
	os.WriteFile(ud, []byte("stylus:\n  site:\n    paletteEndpoint: api.example.com\n    edgeHostToken: c2VjcmV0LXRva2VuLWZvci10aGUtcmFjaw\n"), 0o644)
	if out, err := s.cli("profile", "add", name, "--kernel", filepath.Join(dir, "kernel"), "--initrd", filepath.Join(dir, "initrd"), "--userdata", ud); err != nil {
		s.t.Fatalf("profile add: %v\n%s", err, out)
	}
}

func invFileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}
