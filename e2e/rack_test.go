//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/lab"
)

// rackNode is one row of the manifest the rack test imports, and what the
// test expects of it afterwards.
type rackNode struct {
	mac, name, serial, profile string
	static                     bool // networkType static in the manifest
	fail                       bool // its profile makes the stand-in report failure
}

var rackNodes = []rackNode{
	{mac: "52:54:00:e2:05:01", name: "rack5-node1", serial: "SN-R5-1", profile: "lab"},
	{mac: "52:54:00:e2:05:02", name: "rack5-node2", serial: "SN-R5-2", profile: "lab", static: true},
	{mac: "52:54:00:e2:05:03", name: "rack5-node3", serial: "SN-R5-3", profile: "lab-fail", fail: true},
}

// The pool handed to --dhcp-range; every lastIP must come from it.
var rackPool = [2]netip.Addr{netip.MustParseAddr("10.99.5.50"), netip.MustParseAddr("10.99.5.80")}

// rackManifest renders rackNodes as the CSV an operator would import.
// Column names are deliberately in the manifest's camelCase spelling.
func rackManifest(t *testing.T) string {
	t.Helper()
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Write([]string{"mac", "name", "serial", "profile", "tags", "networkType", "ipAddress", "mask", "gateway"})
	for i, n := range rackNodes {
		row := []string{n.mac, n.name, n.serial, n.profile, fmt.Sprintf("rack=r5;pos=%d", i+1), "", "", "", ""}
		if n.static {
			row[5], row[6], row[7], row[8] = "static", "10.99.5.200", "24", "10.99.5.1"
		}
		w.Write(row)
	}
	w.Flush()
	if err := w.Error(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "rack.csv")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// reportRow is the ready-to-ship report's JSON as an operator's tooling
// reads it: decoded here rather than through inventory.ReportRow so that
// a renamed field breaks this test.
type reportRow struct {
	MAC             string    `json:"mac"`
	Name            string    `json:"name"`
	Serial          string    `json:"serial"`
	Profile         string    `json:"profile"`
	State           string    `json:"state"`
	Stalled         bool      `json:"stalled"`
	Attempt         int       `json:"attempt"`
	FirstBoot       time.Time `json:"firstBoot"`
	InstalledAt     time.Time `json:"installedAt"`
	InstallDuration string    `json:"installDuration"`
	InstallSeconds  float64   `json:"installSeconds"`
	LastIP          string    `json:"lastIP"`
	FailedMessage   string    `json:"failedMessage"`
}

type rackStatus struct {
	Total   int            `json:"total"`
	ByState map[string]int `json:"byState"`
	Stalled []string       `json:"stalled"`
	Failed  []string       `json:"failed"`
}

// watchResult is how a `stagehand watch` run ended.
type watchResult struct {
	stdout, stderr string
	err            error
}

// startWatch runs `stagehand watch` in the namespace in the background, as
// an operator would beside a rack that is booting. The process is stopped
// by PID in cleanup if it is still running.
func (s *server) startWatch(t *testing.T, timeout time.Duration) <-chan watchResult {
	t.Helper()
	args := []string{"netns", "exec", s.n.NS, binary, "watch",
		"--timeout", timeout.String(), "--interval", "1s", "--server", s.url, "--data-dir", s.dataDir}
	cmd := exec.Command("ip", args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	res := make(chan watchResult, 1)
	exited := make(chan struct{})
	go func() {
		err := cmd.Wait()
		close(exited)
		res <- watchResult{stdout: out.String(), stderr: errb.String(), err: err}
	}()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
	})
	return res
}

// From an empty data dir: one CSV import, three BIOS VMs booting at once
// on stagehand's full DHCP (one host with a static site network for the
// installed OS, one whose installer reports failure), then the report,
// the status summary and a bulk reprovision of the failed host.
func TestRack(t *testing.T) {
	n := lab.NewNet(t, "rack", "10.99.5.1/24")
	s := startServer(t, n, "--dhcp-mode", "full", "--dhcp-range", rackPool[0].String()+"-"+rackPool[1].String())

	if out := s.cli("host", "list", "--output", "json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("fresh data dir already holds hosts: %s", out)
	}
	s.addLabProfile("lab", "")
	s.addLabProfile("lab-fail", "standin.fail=1")

	manifest := rackManifest(t)
	if out := s.cli("host", "import", manifest); !strings.Contains(out, "3 created") {
		t.Fatalf("host import: %q, want 3 created", out)
	}
	// The static settings are for the installed OS: they must reach the
	// user-data even though the stand-in itself takes DHCP.
	ud := s.cli("host", "userdata", rackNodes[1].mac)
	for _, want := range []string{"#cloud-config", "type: static", "ipAddress: 10.99.5.200", "gateway: 10.99.5.1", "name: rack5-node2"} {
		if !strings.Contains(ud, want) {
			t.Errorf("user-data of the static host lacks %q:\n%s", want, ud)
		}
	}
	if ud := s.cli("host", "userdata", rackNodes[0].mac); strings.Contains(ud, "type: static") {
		t.Errorf("user-data of a DHCP host names a static network:\n%s", ud)
	}
	if ud := s.cli("host", "userdata", rackNodes[0].mac); strings.Contains(ud, "LABTOKEN-do-not-log") {
		t.Errorf("user-data preview shows the edgeHostToken unmasked")
	}

	// Report times are RFC 3339 at second precision in CSV; JSON keeps
	// more, but compare with a second of slack either side.
	start := time.Now().Add(-time.Second)
	// TCG with three VMs on two cores: far slower than one VM alone.
	const bootTimeout = 6 * time.Minute
	watch := s.startWatch(t, bootTimeout+time.Minute)
	vms := make([]*lab.VM, len(rackNodes))
	for i, node := range rackNodes {
		vms[i] = lab.StartVM(t, n, lab.VMOptions{Firmware: lab.BIOS, MAC: node.mac, NICROM: true, Timeout: bootTimeout})
	}

	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout+30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(vms))
	for i, vm := range vms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = vm.Wait(ctx)
		}()
	}
	wg.Wait()
	for i, node := range rackNodes {
		if errs[i] != nil {
			t.Errorf("%s: %v", node.name, errs[i])
			continue
		}
		log := vms[i].Log()
		want := []string{"STANDIN: site.name=" + node.name, "STANDIN: callback ok"}
		if node.fail {
			want[1] = "STANDIN: failed-callback ok"
		}
		for _, w := range want {
			if !strings.Contains(log, w) {
				t.Errorf("%s: serial console lacks %q; tail:\n%s", node.name, w, lab.Tail(log, 20))
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	end := time.Now().Add(time.Second)

	// watch ends once no host is left in progress, and fails because one
	// host failed, naming it.
	select {
	case w := <-watch:
		if w.err == nil {
			t.Errorf("watch exited 0 with a failed host; stdout:\n%s", w.stdout)
		} else if !strings.Contains(w.stderr, "rack5-node3") {
			t.Errorf("watch failed (%v) without naming rack5-node3; stderr %q", w.err, w.stderr)
		}
		if !strings.Contains(w.stdout, "2/3 installed") {
			t.Errorf("watch's last progress line does not say 2/3 installed:\n%s", w.stdout)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("watch still running 30s after every VM powered off")
	}

	var rows []reportRow
	raw := s.cli("host", "export", "--format", "json")
	if err := json.Unmarshal([]byte(raw), &rows); err != nil {
		t.Fatalf("export json: %v\n%s", err, raw)
	}
	byMAC := map[string]reportRow{}
	for _, r := range rows {
		byMAC[r.MAC] = r
	}
	if len(rows) != 3 || len(byMAC) != 3 {
		t.Fatalf("export has %d rows (%d MACs), want 3:\n%s", len(rows), len(byMAC), raw)
	}
	for _, node := range rackNodes {
		r, ok := byMAC[node.mac]
		if !ok {
			t.Errorf("export lacks %s (%s)", node.mac, node.name)
			continue
		}
		checkRackRow(t, node, r, start, end)
	}

	checkRackCSV(t, s.cli("host", "export", "--format", "csv"))

	var st rackStatus
	raw = s.cli("status", "--output", "json")
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		t.Fatalf("status json: %v\n%s", err, raw)
	}
	if st.Total != 3 || st.ByState["installed"] != 2 || st.ByState["failed"] != 1 ||
		len(st.Failed) != 1 || !strings.Contains(st.Failed[0], "rack5-node3") || len(st.Stalled) != 0 {
		t.Errorf("status: total %d, byState %v, failed %q, stalled %q; want 3, installed 2 failed 1, [rack5-node3], none",
			st.Total, st.ByState, st.Failed, st.Stalled)
	}

	// Reprovision by state: only the failed host moves, and its attempt
	// number changes only when it boots again.
	out := s.cli("host", "reprovision", "--state", "failed")
	if !strings.Contains(out, "reprovisioned 1 host(s)") || !strings.Contains(out, rackNodes[2].mac) {
		t.Errorf("reprovision --state failed: %q, want 1 host, %s", out, rackNodes[2].mac)
	}
	for _, node := range rackNodes {
		h := s.host(node.mac)
		want := "installed"
		if node.fail {
			want = "ready"
		}
		if h.State != want || h.Attempt != 1 {
			t.Errorf("after reprovision: %s state %q attempt %d, want %s attempt 1", node.name, h.State, h.Attempt, want)
		}
	}
	if ev := s.events(rackNodes[2].mac); countKind(ev, "reprovision") != 1 || countKind(ev, "failed") != 1 {
		t.Errorf("%s: want one failed and one reprovision event; events: %+v", rackNodes[2].name, ev)
	}
	if strings.Contains(mustRead(t, s.LogPath), "LABTOKEN-do-not-log") {
		t.Errorf("the edgeHostToken appeared in the server log")
	}
}

// checkRackRow checks one host's line of the JSON report against the
// manifest and the window [start, end] in which the VMs ran.
func checkRackRow(t *testing.T, node rackNode, r reportRow, start, end time.Time) {
	t.Helper()
	if r.Name != node.name || r.Serial != node.serial || r.Profile != node.profile {
		t.Errorf("%s: name %q serial %q profile %q, want the manifest's %q %q %q",
			node.mac, r.Name, r.Serial, r.Profile, node.name, node.serial, node.profile)
	}
	if r.Stalled {
		t.Errorf("%s: stalled", node.name)
	}
	if r.Attempt != 1 {
		t.Errorf("%s: attempt %d, want 1", node.name, r.Attempt)
	}
	if r.FirstBoot.Before(start) || r.FirstBoot.After(end) {
		t.Errorf("%s: firstBoot %v outside the boot window %v–%v", node.name, r.FirstBoot, start, end)
	}
	if ip, err := netip.ParseAddr(r.LastIP); err != nil || ip.Less(rackPool[0]) || rackPool[1].Less(ip) {
		t.Errorf("%s: lastIP %q not in stagehand's pool %s-%s", node.name, r.LastIP, rackPool[0], rackPool[1])
	}
	if node.fail {
		if r.State != "failed" || !strings.Contains(r.FailedMessage, "standin.fail=1") {
			t.Errorf("%s: state %q failedMessage %q, want failed with the stand-in's message", node.name, r.State, r.FailedMessage)
		}
		if !r.InstalledAt.IsZero() || r.InstallDuration != "" {
			t.Errorf("%s: failed host has installedAt %v, installDuration %q", node.name, r.InstalledAt, r.InstallDuration)
		}
		return
	}
	if r.State != "installed" || r.FailedMessage != "" {
		t.Errorf("%s: state %q failedMessage %q, want installed and none", node.name, r.State, r.FailedMessage)
	}
	if r.InstalledAt.After(end) || !r.FirstBoot.Before(r.InstalledAt) {
		t.Errorf("%s: installedAt %v, want after firstBoot %v and before %v", node.name, r.InstalledAt, r.FirstBoot, end)
	}
	if r.InstallDuration == "" || r.InstallSeconds <= 0 {
		t.Errorf("%s: installDuration %q installSeconds %v, want both set", node.name, r.InstallDuration, r.InstallSeconds)
	}
	if d, err := time.ParseDuration(r.InstallDuration); err != nil || d > r.InstalledAt.Sub(r.FirstBoot)+time.Second {
		t.Errorf("%s: installDuration %q (%v) longer than firstBoot→installedAt %v", node.name, r.InstallDuration, err, r.InstalledAt.Sub(r.FirstBoot))
	}
}

// checkRackCSV checks the CSV form of the report: a header and one row per
// host, carrying the same verdicts as the JSON.
func checkRackCSV(t *testing.T, raw string) {
	t.Helper()
	recs, err := csv.NewReader(strings.NewReader(raw)).ReadAll()
	if err != nil {
		t.Fatalf("export csv: %v\n%s", err, raw)
	}
	if len(recs) != 4 {
		t.Fatalf("export csv: %d records, want a header and 3 rows:\n%s", len(recs), raw)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	for _, h := range []string{"mac", "serial", "state", "attempt"} {
		if _, ok := col[h]; !ok {
			t.Fatalf("export csv header %q lacks %q", recs[0], h)
		}
	}
	want := map[string]rackNode{}
	for _, n := range rackNodes {
		want[n.mac] = n
	}
	for _, rec := range recs[1:] {
		node, ok := want[rec[col["mac"]]]
		if !ok {
			t.Errorf("export csv: unexpected row %q", rec)
			continue
		}
		delete(want, node.mac)
		state := "installed"
		if node.fail {
			state = "failed"
		}
		if rec[col["serial"]] != node.serial || rec[col["state"]] != state || rec[col["attempt"]] != "1" {
			t.Errorf("export csv row %q: want serial %s, state %s, attempt 1", rec, node.serial, state)
		}
	}
	if len(want) != 0 {
		t.Errorf("export csv lacks %d host(s): %v", len(want), want)
	}
}
