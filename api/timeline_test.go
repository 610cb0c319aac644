package api_test

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/stagehand-dev/stagehand/inventory"
)

// bootIPXE runs one install of mac as an iPXE NIC ROM boots in full DHCP
// mode: the DHCP events the server records for its replies (the api
// has no DHCP; server/adapters.go writes these details), then stage 1,
// stage 2, kernel, initrd, user-data and the callback through the real
// handlers, from loopback, which the DHCP exchange attributed to mac.
// It returns the attempt's token.
func (e *env) bootIPXE(mac, verdict string) string {
	e.t.Helper()
	e.sawDHCP("127.0.0.1", mac)
	e.events.Record(mac, "dhcp", "full OFFER 127.0.0.1 client ipxe arch bios boot "+e.base+"/boot.ipxe")
	e.events.Record(mac, "dhcp", "full ACK 127.0.0.1 client ipxe arch bios boot "+e.base+"/boot.ipxe")
	if r := e.get("/boot.ipxe"); r.status != http.StatusOK {
		e.t.Fatalf("stage 1: %d", r.status)
	}
	_, tok := e.stage2("mac=" + mac)
	for _, a := range []string{"kernel", "initrd"} {
		if r := e.get("/artifacts/edge/" + a); r.status != http.StatusOK {
			e.t.Fatalf("%s: %d", a, r.status)
		}
	}
	if r := e.get("/userdata/" + tok); r.status != http.StatusOK {
		e.t.Fatalf("user-data: %d %s", r.status, r.body)
	}
	// The artifacts' events are the recorder's: committed before the
	// callback, as a real installer's minutes between them ensure.
	e.flush()
	if r := e.post("/callback/"+tok+"/"+verdict, "disk full"); r.status != http.StatusOK {
		e.t.Fatalf("%s: %d %s", verdict, r.status, r.body)
	}
	e.flush()
	return tok
}

// hostTimeline is GET /api/v1/hosts/{mac}'s timeline.
func (e *env) hostTimeline(mac string) []inventory.Attempt {
	e.t.Helper()
	var h struct {
		Timeline []inventory.Attempt `json:"timeline"`
	}
	e.opJSON(http.MethodGet, "/hosts/"+mac, "", http.StatusOK, &h)
	return h.Timeline
}

var ipxePhases = []string{"ipxe-dhcp", "stage1", "stage2", "kernel", "initrd", "userdata", "done"}

// checkAttempt: a's phases are want, in order, each starting where the
// previous ended, none negative, within the attempt.
func checkAttempt(t *testing.T, a inventory.Attempt, n int, outcome string, want []string) {
	t.Helper()
	var got []string
	prev := a.Start
	for _, p := range a.Phases {
		got = append(got, string(p.Phase))
		d := p.End.Sub(p.Start).Seconds()
		if !p.Start.Equal(prev) || p.Seconds < 0 || p.Seconds-d > 0.0005 || d-p.Seconds > 0.0005 {
			t.Errorf("phase %s: %v → %v (%v s) after a phase that ended %v", p.Phase, p.Start, p.End, p.Seconds, prev)
		}
		prev = p.End
	}
	if a.Attempt != n || a.Outcome != outcome || !slices.Equal(got, want) || !a.End.Equal(prev) {
		t.Errorf("attempt %d %q phases %v ending %v, want attempt %d %q phases %v ending at the last", a.Attempt, a.Outcome, got, a.End, n, outcome, want)
	}
}

// GET of one host carries its boot attempts: the install through the
// real handlers is one attempt with the phases of an iPXE NIC ROM boot,
// and a reinstall after a reprovision is a second.
func TestHostTimelineJSON(t *testing.T) {
	e := newEnv(t, nil)
	e.addHost(inventory.Host{MAC: mac1, Name: "node1", Profile: "edge"})
	if tl := e.hostTimeline(mac1); len(tl) != 0 {
		t.Fatalf("a host that never booted has a timeline: %+v", tl)
	}
	e.bootIPXE(mac1, "done")
	tl := e.hostTimeline(mac1)
	if len(tl) != 1 {
		t.Fatalf("%d attempts after one install: %+v", len(tl), tl)
	}
	checkAttempt(t, tl[0], 1, "installed", ipxePhases)

	// The raw shape: the keys other tools read.
	r := e.op(http.MethodGet, "/hosts/"+mac1, "")
	var raw map[string]json.RawMessage
	json.Unmarshal(r.body, &raw)
	var attempts []map[string]json.RawMessage
	if err := json.Unmarshal(raw["timeline"], &attempts); err != nil || len(attempts) != 1 {
		t.Fatalf("timeline %s: %v", raw["timeline"], err)
	}
	for _, k := range []string{"attempt", "start", "end", "outcome", "phases"} {
		if _, ok := attempts[0][k]; !ok {
			t.Errorf("timeline attempt has no %q: %s", k, raw["timeline"])
		}
	}

	e.opJSON(http.MethodPost, "/hosts/"+mac1+"/reprovision", "", http.StatusOK, nil)
	e.bootIPXE(mac1, "failed")
	tl = e.hostTimeline(mac1)
	if len(tl) != 2 {
		t.Fatalf("%d attempts after a reinstall: %+v", len(tl), tl)
	}
	checkAttempt(t, tl[0], 1, "installed", ipxePhases)
	checkAttempt(t, tl[1], 2, "failed", ipxePhases)
	if !tl[1].Start.After(tl[0].End) {
		t.Errorf("the second attempt starts %v, before the first ended %v", tl[1].Start, tl[0].End)
	}
}

// The export (the report) ends with one column per phase of the latest
// attempt, after every column it had; the JSON report carries the attempt.
func TestExportPhaseColumns(t *testing.T) {
	e := newEnv(t, nil)
	e.addHost(inventory.Host{MAC: mac1, Name: "node1", Profile: "edge"})
	e.addHost(inventory.Host{MAC: macB, Name: "node2", Profile: "edge"})
	e.bootIPXE(mac1, "done")
	tl := e.hostTimeline(mac1)

	r := e.op(http.MethodGet, "/hosts/export?format=csv", "")
	recs, err := csv.NewReader(strings.NewReader(r.text())).ReadAll()
	if err != nil || len(recs) != 3 {
		t.Fatalf("export: %v\n%s", err, r.body)
	}
	head := recs[0]
	phases := inventory.Phases()
	n := len(head) - len(phases)
	for i, p := range phases {
		if head[n+i] != inventory.PhaseColumn(p) {
			t.Errorf("column %d is %q, want %q: %v", n+i, head[n+i], inventory.PhaseColumn(p), head)
		}
	}
	if !slices.Equal(head[:15], strings.Split("mac,name,serial,smbios_serial,profile,state,stalled,attempt,first_boot,installed_at,install_duration_s,last_ip,failed_message,dhcp_address,other_macs", ",")) {
		t.Errorf("the report's first columns moved: %v", head)
	}
	byPhase := map[string]float64{}
	for _, p := range tl[0].Phases {
		byPhase[string(p.Phase)] = p.Seconds
	}
	for i, p := range phases {
		got := recs[1][n+i]
		want, ok := byPhase[string(p)]
		if !ok && got != "" || ok && got != strconv.FormatFloat(want, 'f', 3, 64) {
			t.Errorf("%s's %s = %q, want the timeline's %v seconds to the millisecond", mac1, inventory.PhaseColumn(p), got, want)
		}
		if recs[2][n+i] != "" {
			t.Errorf("%s never booted, but its %s = %q", macB, inventory.PhaseColumn(p), recs[2][n+i])
		}
	}

	var rows []struct {
		MAC      string             `json:"mac"`
		LastBoot *inventory.Attempt `json:"lastBoot"`
	}
	e.opJSON(http.MethodGet, "/hosts/export?format=json", "", http.StatusOK, &rows)
	if len(rows) != 2 || rows[0].LastBoot == nil || rows[1].LastBoot != nil {
		t.Fatalf("JSON report: %+v", rows)
	}
	checkAttempt(t, *rows[0].LastBoot, 1, "installed", ipxePhases)
}

// phaseCounts is the observation count of each phase's histogram.
func phaseCounts(t *testing.T, fams map[string]*dto.MetricFamily) map[string]uint64 {
	t.Helper()
	f := fams["stagehand_boot_phase_seconds"]
	if f == nil || f.GetType() != dto.MetricType_HISTOGRAM || f.GetHelp() == "" {
		t.Fatalf("stagehand_boot_phase_seconds is no histogram family: %v", f)
	}
	out := map[string]uint64{}
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "phase" {
				out[l.GetValue()] = m.GetHistogram().GetSampleCount()
			}
		}
	}
	return out
}

// /metrics observes each phase of an attempt once, when its callback is
// recorded: a repeated callback observes nothing, a failed attempt
// counts, and phases a boot did not have stay at zero.
func TestBootPhaseMetrics(t *testing.T) {
	e := newEnv(t, nil)
	e.addHost(inventory.Host{MAC: mac1, Name: "node1", Profile: "edge"})
	e.addHost(inventory.Host{MAC: macB, Name: "node2", Profile: "edge"})
	counts := phaseCounts(t, e.scrape())
	if len(counts) != len(inventory.Phases()) {
		t.Fatalf("phase series %v, want one per phase %v", counts, inventory.Phases())
	}
	tok := e.bootIPXE(mac1, "done")
	if r := e.post("/callback/"+tok+"/done", ""); r.status != http.StatusOK {
		t.Fatalf("repeated done: %d %s", r.status, r.body)
	}
	e.bootIPXE(macB, "failed")

	fams := e.scrape()
	counts = phaseCounts(t, fams)
	for _, p := range inventory.Phases() {
		want := uint64(0)
		if slices.Contains(ipxePhases, string(p)) {
			want = 2 // one installed attempt, one failed
		}
		if counts[string(p)] != want {
			t.Errorf("phase %s observed %d times, want %d (%v)", p, counts[string(p)], want, counts)
		}
	}
	var sum float64
	for _, m := range fams["stagehand_boot_phase_seconds"].GetMetric() {
		sum += m.GetHistogram().GetSampleSum()
	}
	if sum <= 0 {
		t.Errorf("phase sums add up to %v", sum)
	}
}

// UEFI HTTP boot's download of the iPXE binary is the boot-file
// milestone: a whole GET records it on the host at the address, a
// range or a HEAD does not.
func TestBootFileOverHTTPEvent(t *testing.T) {
	e := newEnv(t, nil)
	e.addHost(inventory.Host{MAC: mac1, Name: "node1", Profile: "edge"})
	e.sawDHCP("127.0.0.1", mac1)
	if r := e.request(http.MethodGet, "/tftp/snponly.efi", nil, map[string]string{"Range": "bytes=0-3"}); r.status != http.StatusPartialContent {
		t.Fatalf("range: %d", r.status)
	}
	if r := e.request(http.MethodHead, "/tftp/snponly.efi", nil, nil); r.status != http.StatusOK {
		t.Fatalf("HEAD: %d", r.status)
	}
	if r := e.get("/tftp/snponly.efi"); r.status != http.StatusOK || r.text() != "SNPONLY-EFI-BYTES" {
		t.Fatalf("GET: %d %q", r.status, r.body)
	}
	e.flush()
	evs, err := e.store.Events(mac1)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range evs {
		if ev.Kind == inventory.BootFileKind {
			got = append(got, ev.Detail)
		}
	}
	if want := []string{"snponly.efi 17 bytes over HTTP"}; !slices.Equal(got, want) {
		t.Errorf("boot-file events %q, want %q", got, want)
	}
	tl := e.hostTimeline(mac1)
	if len(tl) != 1 || len(tl[0].Phases) != 1 || tl[0].Phases[0].Phase != "boot-file" || tl[0].Outcome != "in progress" {
		t.Errorf("timeline %+v, want one boot in progress with its boot-file phase", tl)
	}
}
