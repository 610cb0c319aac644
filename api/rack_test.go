package api_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/stagehand-dev/stagehand/api"
	"github.com/stagehand-dev/stagehand/inventory"
	"github.com/stagehand-dev/stagehand/inventory/storage"
	"github.com/stagehand-dev/stagehand/inventory/storage/boltstore"
	"github.com/stagehand-dev/stagehand/ipxe"
	"github.com/stagehand-dev/stagehand/iso9660"
	"github.com/stagehand-dev/stagehand/userdata"
)

const (
	rk1 = "52:54:00:aa:00:01"
	rk2 = "52:54:00:aa:00:02"
	rk3 = "52:54:00:aa:00:03"
	rk4 = "52:54:00:aa:00:04"
	rk5 = "52:54:00:aa:00:05"
)

// importCSV posts a manifest as an operator would (text/csv body).
func (e *env) importCSV(body string) resp {
	e.t.Helper()
	return e.request(http.MethodPost, "/api/v1/hosts/import", strings.NewReader(body),
		map[string]string{"Authorization": "Bearer " + testToken, "Content-Type": "text/csv"})
}

// snapshot is every host and every host's events: what "nothing
// changed" means for an all-or-nothing operation.
type snapshot struct {
	hosts  []inventory.Host
	events map[string][]inventory.Event
}

func (e *env) snapshot() snapshot {
	e.t.Helper()
	s := snapshot{hosts: e.hosts(), events: map[string][]inventory.Event{}}
	for _, h := range s.hosts {
		ev, err := e.store.Events(h.MAC)
		if err != nil {
			e.t.Fatal(err)
		}
		s.events[h.MAC] = ev
	}
	return s
}

func (e *env) sameAs(before snapshot) {
	e.t.Helper()
	if after := e.snapshot(); !reflect.DeepEqual(before, after) {
		e.t.Errorf("store changed:\nbefore %+v\nafter  %+v", before, after)
	}
}

// rowErrors decodes a rejected manifest's error body.
func rowErrors(t *testing.T, r resp) []inventory.RowError {
	t.Helper()
	if r.status != http.StatusBadRequest {
		t.Fatalf("status %d, want 400: %s", r.status, r.body)
	}
	var b api.ErrorBody
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatalf("error body %s: %v", r.body, err)
	}
	if b.Error.Code != "validation" || !strings.Contains(b.Error.Message, "nothing imported") {
		t.Errorf("error %q: %q", b.Error.Code, b.Error.Message)
	}
	return b.Error.Rows
}

// wantRows checks that rows holds exactly one problem per expected row,
// each naming the field (in Field, or as "field F" in the reason when the
// store found it) and containing the reason fragment.
func wantRows(t *testing.T, rows []inventory.RowError, want map[int][2]string) {
	t.Helper()
	got := map[int]inventory.RowError{}
	for _, r := range rows {
		if _, dup := got[r.Row]; dup {
			t.Errorf("row %d reported twice: %+v", r.Row, rows)
		}
		got[r.Row] = r
	}
	for row, w := range want {
		r, ok := got[row]
		if !ok {
			t.Errorf("row %d (%s) not reported; got %+v", row, w[0], rows)
			continue
		}
		if w[0] != "" && r.Field != w[0] && !strings.Contains(r.Reason, "field "+w[0]) {
			t.Errorf("row %d: field %q reason %q, want field %s", row, r.Field, r.Reason, w[0])
		}
		if !strings.Contains(r.Reason, w[1]) {
			t.Errorf("row %d: reason %q lacks %q", row, r.Reason, w[1])
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d rows reported, want %d: %+v", len(got), len(want), rows)
	}
}

const goodManifest = `mac,name,serial,profile,tags,networkType,ipAddress,mask,gateway,nameserver
52:54:00:aa:00:01,n1,SN1,edge,rack=r1;slot=1,static,10.1.0.11,24,10.1.0.1,10.1.0.2
52-54-00-AA-00-02,n2,SN2,edge,rack=r1;slot=2,dhcp,,,,
525400aa0003,n3,SN3,,rack=r2,,,,,
`

func TestImportManifest(t *testing.T) {
	e := newEnv(t, nil)
	var res inventory.ImportResult
	r := e.importCSV(goodManifest)
	if r.status != http.StatusOK || json.Unmarshal(r.body, &res) != nil || res != (inventory.ImportResult{Created: 3}) {
		t.Fatalf("import: %d %s", r.status, r.body)
	}
	h1 := e.host(rk1)
	if h1.State != inventory.StateReady || h1.Name != "n1" || h1.Serial != "SN1" || h1.Profile != "edge" ||
		!reflect.DeepEqual(h1.Site.Tags, map[string]string{"rack": "r1", "slot": "1"}) {
		t.Errorf("host 1 = %+v", h1)
	}
	if n := h1.Site.Network; n == nil || *n != (userdata.Network{Type: "static", IPAddress: "10.1.0.11", Mask: "24", Gateway: "10.1.0.1", Nameserver: "10.1.0.2"}) {
		t.Errorf("host 1 network = %+v", n)
	}
	if h2 := e.host(rk2); h2.State != inventory.StateReady || h2.Site.Network == nil || h2.Site.Network.Type != "dhcp" || h2.Site.Tags["slot"] != "2" {
		t.Errorf("host 2 = %+v", h2)
	}
	if h3 := e.host(rk3); h3.State != inventory.StateDiscovered || h3.Profile != "" || h3.Site.Network != nil || !reflect.DeepEqual(h3.Site.Tags, map[string]string{"rack": "r2"}) {
		t.Errorf("host 3 = %+v", h3)
	}
	if k := eventKinds(t, e.store, rk1); !reflect.DeepEqual(k, []string{"imported"}) {
		t.Errorf("host 1 events %v", k)
	}

	// Host 1 starts installing; a re-import updates it in place and
	// leaves its attempt alone, and gives host 3 a profile.
	e.stage2("mac=" + rk1)
	re := strings.NewReplacer("SN1,", "SN1b,", "525400aa0003,n3,SN3,,", "525400aa0003,n3,SN3,edge,").Replace(goodManifest)
	r = e.importCSV(re)
	if r.status != http.StatusOK || json.Unmarshal(r.body, &res) != nil || res != (inventory.ImportResult{Updated: 3}) {
		t.Fatalf("re-import: %d %s", r.status, r.body)
	}
	if h := e.host(rk1); h.State != inventory.StateBooting || h.Attempt != 1 || h.Serial != "SN1b" || h.TokenHash == "" {
		t.Errorf("re-imported booting host = %+v", h)
	}
	if h := e.host(rk3); h.State != inventory.StateReady || h.Profile != "edge" {
		t.Errorf("re-imported host 3 = %+v", h)
	}
	if k := eventKinds(t, e.store, rk2); !reflect.DeepEqual(k, []string{"imported", "reimported"}) {
		t.Errorf("host 2 events %v", k)
	}
}

func TestImportRejectsEveryBadRow(t *testing.T) {
	e := newEnv(t, nil)
	e.addHost(inventory.Host{MAC: rk1, Name: "taken", Profile: "edge"})
	before := e.snapshot()

	bad := `mac,name,profile,tags,networkType,ipAddress,mask,gateway
zz:zz:zz,a2,edge,,,,,
52:54:00:bb:00:03,a3,edge,,,,,
52:54:00:bb:00:03,a4,edge,,,,,
52:54:00:bb:00:05,twin,edge,,,,,
52:54:00:bb:00:06,twin,edge,,,,,
52:54:00:bb:00:07,taken,edge,,,,,
52:54:00:bb:00:08,a8,nope,,,,,
52:54:00:bb:00:09,a9,edge,,static,10.0.0.9,24,
52:54:00:bb:00:0a,a10,edge,rack,,,,
52:54:00:bb:00:0b,a11,edge
52:54:00:bb:00:0c,a12,edge,rack=r1,,,,
`
	rows := rowErrors(t, e.importCSV(bad))
	wantRows(t, rows, map[int][2]string{
		2:  {"mac", "not an Ethernet address"},
		4:  {"mac", "duplicate of row 3"},
		6:  {"name", "also used by row 5"},
		7:  {"name", "already used by " + rk1},
		8:  {"profile", `no profile named "nope"`},
		9:  {"", "gateway"},
		10: {"tags", "key=value"},
		11: {"", "wrong number of fields"},
	})
	for _, r := range rows {
		if r.Row == 10 && r.MAC != "52:54:00:bb:00:0a" {
			t.Errorf("row 10 names mac %q", r.MAC)
		}
	}
	e.sameAs(before)
	if _, err := e.store.Host("52:54:00:bb:00:0c"); err == nil {
		t.Error("a good row of a rejected manifest was stored")
	}

	// A parse problem and a store problem in one file: both reported.
	rows = rowErrors(t, e.importCSV("mac,profile\n52:54:00:zz:00:02,edge\n52:54:00:bb:00:03,nope\n"))
	wantRows(t, rows, map[int][2]string{2: {"mac", "not an Ethernet address"}, 3: {"profile", "nope"}})

	// Header problems reject the file at row 1.
	rows = rowErrors(t, e.importCSV("mac,colour\n52:54:00:bb:00:03,blue\n"))
	wantRows(t, rows, map[int][2]string{1: {"colour", "unknown column"}})
	e.sameAs(before)

	// Over the size bound: 413, not a parse of 16 MiB of garbage.
	big := "mac,name\n52:54:00:bb:00:03,\"" + strings.Repeat("x", inventory.MaxImportBytes) + "\"\n"
	wantError(t, e.importCSV(big), http.StatusRequestEntityTooLarge, "too_large")
	e.sameAs(before)
}

// rackFlow drives three hosts through real HTTP: rk1 installed, rk2
// failed, rk3 left ready.
func rackFlow(t *testing.T, e *env) {
	t.Helper()
	e.addHost(inventory.Host{MAC: rk1, Name: "n1", Serial: "SN1", Profile: "edge"})
	e.addHost(inventory.Host{MAC: rk2, Name: "n2", Profile: "edge"})
	e.addHost(inventory.Host{MAC: rk3, Name: "n3", Profile: "edge"})
	_, tok := e.stage2("mac=" + rk1 + "&serial=SMBIOS-1")
	if r := e.get("/userdata/" + tok); r.status != http.StatusOK {
		t.Fatalf("userdata: %d %s", r.status, r.body)
	}
	if r := e.post("/callback/"+tok+"/done", ""); r.status != http.StatusOK {
		t.Fatalf("done: %d %s", r.status, r.body)
	}
	_, tok = e.stage2("mac=" + rk2)
	if r := e.post("/callback/"+tok+"/failed", "disk not found"); r.status != http.StatusOK {
		t.Fatalf("failed: %d %s", r.status, r.body)
	}
}

func TestExportReport(t *testing.T) {
	e := newEnv(t, nil)
	rackFlow(t, e)

	var rows []inventory.ReportRow
	e.opJSON(http.MethodGet, "/hosts/export?format=json", "", http.StatusOK, &rows)
	if len(rows) != 3 {
		t.Fatalf("report rows %+v", rows)
	}
	h1 := e.host(rk1)
	r1, r2, r3 := rows[0], rows[1], rows[2]
	if r1.MAC != rk1 || r1.State != "installed" || r1.Attempt != 1 || r1.SMBIOSSerial != "SMBIOS-1" || r1.Serial != "SN1" ||
		r1.LastIP != "127.0.0.1" || r1.FirstBoot.IsZero() || !r1.InstalledAt.Equal(h1.InstalledAt) || r1.InstalledAt.Before(r1.FirstBoot) ||
		r1.InstallDuration == "" || r1.InstallSeconds < 0 || r1.Stalled {
		t.Errorf("installed row %+v", r1)
	}
	if want := h1.InstalledAt.Sub(h1.BootAt).Seconds(); r1.InstallSeconds != want {
		t.Errorf("install seconds %v, want %v", r1.InstallSeconds, want)
	}
	if r2.MAC != rk2 || r2.State != "failed" || r2.Attempt != 1 || r2.FailedMessage != "disk not found" || !r2.InstalledAt.IsZero() || r2.InstallDuration != "" {
		t.Errorf("failed row %+v", r2)
	}
	if r3.MAC != rk3 || r3.State != "ready" || r3.Attempt != 0 || !r3.FirstBoot.IsZero() || r3.LastIP != "" {
		t.Errorf("ready row %+v", r3)
	}

	r := e.op(http.MethodGet, "/hosts/export?format=csv", "")
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/csv") {
		t.Fatalf("csv export: %d %v", r.status, r.header)
	}
	recs, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
	if err != nil || len(recs) != 4 {
		t.Fatalf("csv export %q: %v", r.body, err)
	}
	col := map[string]int{}
	for i, c := range recs[0] {
		col[c] = i
	}
	get := func(row int, c string) string {
		i, ok := col[c]
		if !ok {
			t.Fatalf("csv export has no column %s: %v", c, recs[0])
		}
		return recs[row][i]
	}
	if get(1, "mac") != rk1 || get(1, "state") != "installed" || get(1, "attempt") != "1" || get(1, "smbios_serial") != "SMBIOS-1" ||
		get(1, "last_ip") != "127.0.0.1" || get(1, "installed_at") != h1.InstalledAt.UTC().Format(time.RFC3339) ||
		get(1, "first_boot") != h1.FirstBootAt.UTC().Format(time.RFC3339) || get(1, "install_duration_s") == "" || get(1, "stalled") != "false" {
		t.Errorf("csv installed row %v", recs[1])
	}
	if get(2, "state") != "failed" || get(2, "failed_message") != "disk not found" || get(2, "installed_at") != "" {
		t.Errorf("csv failed row %v", recs[2])
	}
	if get(3, "state") != "ready" || get(3, "attempt") != "0" || get(3, "first_boot") != "" {
		t.Errorf("csv ready row %v", recs[3])
	}
	wantError(t, e.op(http.MethodGet, "/hosts/export?format=xml", ""), http.StatusBadRequest, "validation")
}

func TestStalledHosts(t *testing.T) {
	var skew atomic.Int64
	e := newEnv(t, func(c *api.Config) {
		c.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	})
	slow := map[string]any{
		"kernel": filepath.Join(e.root, "artifacts", "vmlinuz"), "initrd": filepath.Join(e.root, "artifacts", "initrd.img"),
		"userdata": baseUD, "installTimeout": "1s",
	}
	b, _ := json.Marshal(slow)
	var p inventory.Profile
	e.opJSON(http.MethodPut, "/profiles/slow", string(b), http.StatusOK, &p)
	if p.InstallTimeout() != time.Second {
		t.Fatalf("profile timeout %v", p.InstallTimeout())
	}
	e.addHost(inventory.Host{MAC: rk1, Name: "slowpoke", Profile: "slow"})
	e.addHost(inventory.Host{MAC: rk2, Name: "fine", Profile: "edge"})
	e.stage2("mac=" + rk1)
	e.stage2("mac=" + rk2)

	stalled := func() []string {
		var hs []api.HostView
		e.opJSON(http.MethodGet, "/hosts", "", http.StatusOK, &hs)
		var out []string
		for _, h := range hs {
			if h.Stalled {
				out = append(out, h.MAC)
			}
		}
		return out
	}
	if s := stalled(); len(s) != 0 {
		t.Fatalf("stalled before the timeout: %v", s)
	}
	skew.Store(int64(5 * time.Second)) // past "slow"'s 1s, well inside edge's hour
	if s := stalled(); !reflect.DeepEqual(s, []string{rk1}) {
		t.Fatalf("stalled = %v, want only %s", s, rk1)
	}
	var only []api.HostView
	e.opJSON(http.MethodGet, "/hosts?stalled=true", "", http.StatusOK, &only)
	if len(only) != 1 || only[0].MAC != rk1 || only[0].State != inventory.StateBooting {
		t.Errorf("?stalled=true = %+v", only)
	}
	var st api.Status
	e.opJSON(http.MethodGet, "/status", "", http.StatusOK, &st)
	if !reflect.DeepEqual(st.Stalled, []string{rk1 + " (slowpoke)"}) || st.ByState["booting"] != 2 || st.Total != 2 {
		t.Errorf("status %+v", st)
	}
	var rows []inventory.ReportRow
	e.opJSON(http.MethodGet, "/hosts/export?format=json", "", http.StatusOK, &rows)
	if len(rows) != 2 || !rows[0].Stalled || rows[1].Stalled {
		t.Errorf("export %+v", rows)
	}
}

func TestBulkReprovision(t *testing.T) {
	e := newEnv(t, nil)
	rack := func(r string) userdata.Site { return userdata.Site{Tags: map[string]string{"rack": r}} }
	e.addHost(inventory.Host{MAC: rk1, Profile: "edge", Site: rack("r1")})
	e.addHost(inventory.Host{MAC: rk2, Profile: "edge", Site: rack("r2")})
	e.addHost(inventory.Host{MAC: rk3, Profile: "edge", Site: rack("r1")})
	e.addHost(inventory.Host{MAC: rk4, Profile: "edge", Site: rack("r2")})
	e.addHost(inventory.Host{MAC: rk5}) // discovered: nothing to reprovision
	finish := func(mac, result string) {
		_, tok := e.stage2("mac=" + mac)
		if r := e.post("/callback/"+tok+"/"+result, ""); r.status != http.StatusOK {
			t.Fatalf("%s %s: %d %s", mac, result, r.status, r.body)
		}
	}
	finish(rk1, "done")
	finish(rk2, "failed")
	finish(rk3, "failed")
	state := func(mac string) string { return e.host(mac).State.String() }

	before := e.snapshot()
	msg := wantError(t, e.op(http.MethodPost, "/hosts/reprovision", ""), http.StatusBadRequest, "validation")
	if !strings.Contains(msg, "all=true") {
		t.Errorf("no-filter message %q", msg)
	}
	wantError(t, e.op(http.MethodPost, "/hosts/reprovision?state=bogus", ""), http.StatusBadRequest, "validation")
	e.sameAs(before)

	var res api.BulkResult
	e.opJSON(http.MethodPost, "/hosts/reprovision?state=failed", "", http.StatusOK, &res)
	if !reflect.DeepEqual(res.Changed, []string{rk2, rk3}) || len(res.Errors) != 0 {
		t.Fatalf("state=failed: %+v", res)
	}
	if state(rk1) != "installed" || state(rk2) != "ready" || state(rk3) != "ready" || e.host(rk2).Attempt != 1 {
		t.Errorf("after state=failed: %s %s %s", state(rk1), state(rk2), state(rk3))
	}
	if k := eventKinds(t, e.store, rk2); k[len(k)-1] != "reprovision" {
		t.Errorf("rk2 events %v", k)
	}

	res = api.BulkResult{}
	e.opJSON(http.MethodPost, "/hosts/reprovision?tag="+url.QueryEscape("rack=r1"), "", http.StatusOK, &res)
	if !reflect.DeepEqual(res.Changed, []string{rk1, rk3}) || len(res.Errors) != 0 {
		t.Fatalf("tag=rack=r1: %+v", res)
	}
	if state(rk1) != "ready" {
		t.Errorf("rk1 after tag reprovision: %s", state(rk1))
	}

	var hs []api.HostView
	e.opJSON(http.MethodGet, "/hosts?tag=rack=r2", "", http.StatusOK, &hs)
	if len(hs) != 2 || hs[0].MAC != rk2 || hs[1].MAC != rk4 {
		t.Errorf("GET /hosts?tag=rack=r2: %+v", hs)
	}

	res = api.BulkResult{}
	e.opJSON(http.MethodPost, "/hosts/reprovision?all=true", "", http.StatusOK, &res)
	if !reflect.DeepEqual(res.Changed, []string{rk1, rk2, rk3, rk4}) || len(res.Errors) != 1 || res.Errors[0].MAC != rk5 ||
		!strings.Contains(res.Errors[0].Error, "discovered") {
		t.Fatalf("all=true: %+v", res)
	}
	if state(rk5) != "discovered" {
		t.Errorf("discovered host became %s", state(rk5))
	}
}

func TestBulkAssign(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.Unknown = ipxe.UnknownDiscover })
	e.stage2("mac=" + rk1 + "&serial=S1")
	e.stage2("mac=" + rk2 + "&serial=S2")
	e.addHost(inventory.Host{MAC: rk3, Profile: "edge"})
	if e.host(rk1).State != inventory.StateDiscovered || e.host(rk1).Facts.Serial != "S1" {
		t.Fatalf("discovered host %+v", e.host(rk1))
	}
	before := e.snapshot()
	wantError(t, e.op(http.MethodPost, "/hosts/assign?state=discovered", `{"profile":"nope"}`), http.StatusNotFound, "not_found")
	wantError(t, e.op(http.MethodPost, "/hosts/assign?state=discovered", `{}`), http.StatusBadRequest, "validation")
	wantError(t, e.op(http.MethodPost, "/hosts/assign", `{"profile":"edge"}`), http.StatusBadRequest, "validation")
	e.sameAs(before)

	var res api.BulkResult
	e.opJSON(http.MethodPost, "/hosts/assign?state=discovered", `{"profile":"edge"}`, http.StatusOK, &res)
	if !reflect.DeepEqual(res.Changed, []string{rk1, rk2}) || len(res.Errors) != 0 {
		t.Fatalf("assign: %+v", res)
	}
	for _, mac := range []string{rk1, rk2} {
		if h := e.host(mac); h.State != inventory.StateReady || h.Profile != "edge" {
			t.Errorf("%s after assign: %+v", mac, h)
		}
		if k := eventKinds(t, e.store, mac); k[len(k)-1] != "assign" {
			t.Errorf("%s events %v", mac, k)
		}
	}
	// The next boot of an assigned host installs.
	if _, tok := e.stage2("mac=" + rk1); tok == "" {
		t.Error("assigned host got no install script")
	}
}

var callbackDone = regexp.MustCompile(`(http://[^\s"']+)/callback/([^/\s"']+)/done`)

// isoFile reads one file out of an ISO image held in memory.
func isoFile(t *testing.T, im *iso9660.Image, r io.ReaderAt, name string) string {
	t.Helper()
	f, err := im.Stat(name)
	if err != nil {
		t.Fatalf("Stat(%s): %v", name, err)
	}
	b, err := io.ReadAll(f.Section(r))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCIData(t *testing.T) {
	e := newEnv(t, nil)
	e.addHost(inventory.Host{MAC: rk1, Name: "node1", Profile: "edge"})
	r := e.op(http.MethodGet, "/hosts/"+rk1+"/cidata.iso", "")
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/x-iso9660-image" {
		t.Fatalf("cidata: %d %v %s", r.status, r.header, r.body)
	}
	rd := bytes.NewReader(r.body)
	im, err := iso9660.Open(rd, int64(len(r.body)))
	if err != nil {
		t.Fatalf("iso9660.Open: %v", err)
	}
	if im.VolumeID() != "cidata" {
		t.Errorf("volume ID %q", im.VolumeID())
	}
	ud := isoFile(t, im, rd, "/user-data")
	if !strings.HasPrefix(ud, "#cloud-config") || !strings.Contains(ud, "node1") {
		t.Errorf("user-data:\n%s", ud)
	}
	meta := isoFile(t, im, rd, "/meta-data")
	if !strings.Contains(meta, "instance-id") || !strings.Contains(meta, rk1+"-attempt-1") || !strings.Contains(meta, "local-hostname: node1") {
		t.Errorf("meta-data:\n%s", meta)
	}
	h := e.host(rk1)
	if h.State != inventory.StateBooting || h.Attempt != 1 {
		t.Errorf("host after cidata: %+v", h)
	}
	e.flush()
	if k := eventKinds(t, e.store, rk1); !slices.Contains(k, "cidata") {
		t.Errorf("events %v", k)
	}
	m := callbackDone.FindStringSubmatch(ud)
	if m == nil || m[1] != e.base {
		t.Fatalf("no callback under %s in user-data:\n%s", e.base, ud)
	}
	if r := e.post("/callback/"+m[2]+"/done", ""); r.status != http.StatusOK {
		t.Fatalf("callback with the seed's token: %d %s", r.status, r.body)
	}
	if h := e.host(rk1); h.State != inventory.StateInstalled {
		t.Errorf("after callback: %s", h.State)
	}
	wantError(t, e.op(http.MethodGet, "/hosts/52:54:00:ff:ff:ff/cidata.iso", ""), http.StatusNotFound, "not_found")
}

// A host stored before write-time validation existed may not render: the
// seed is refused with 422 and no attempt starts.
func TestCIDataUnrenderable(t *testing.T) {
	dir := t.TempDir()
	art := filepath.Join(dir, "vmlinuz")
	if err := os.WriteFile(art, []byte("kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := inventory.Options{Log: zerolog.New(zerolog.NewTestWriter(t)), LockTimeout: 200 * time.Millisecond}
	st, err := inventory.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutProfile(inventory.Profile{Name: "edge", Kernel: art, Initrd: art, UserData: baseUD}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateHost(inventory.Host{MAC: rk1, Profile: "edge"}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	// Static network without a gateway, written behind the store's back.
	eng, err := boltstore.Open(filepath.Join(dir, inventory.DBFile), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = eng.Update(func(tx storage.Tx) error {
		var h map[string]any
		if err := json.Unmarshal(tx.Get("hosts", rk1), &h); err != nil {
			return err
		}
		h["site"] = map[string]any{"network": map[string]any{"type": "static", "ipAddress": "10.0.0.5", "mask": "24"}}
		raw, _ := json.Marshal(h)
		tx.Put("hosts", rk1, raw)
		return nil
	})
	eng.Close()
	if err != nil {
		t.Fatal(err)
	}
	st, err = inventory.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := api.New(api.Config{Store: st, Base: "http://192.0.2.1", Token: testToken, Log: opts.Log})
	before, _ := st.Hosts(inventory.Filter{})
	evBefore, _ := st.Events(rk1)

	req, _ := http.NewRequest(http.MethodGet, "/api/v1/hosts/"+rk1+"/cidata.iso", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, req)
	if w.Code != http.StatusUnprocessableEntity || !strings.Contains(w.Body.String(), "gateway") || !strings.Contains(w.Body.String(), rk1) {
		t.Fatalf("cidata of an unrenderable host: %d %s", w.Code, w.Body.String())
	}
	after, _ := st.Hosts(inventory.Filter{})
	evAfter, _ := st.Events(rk1)
	if !reflect.DeepEqual(before, after) || !reflect.DeepEqual(evBefore, evAfter) {
		t.Errorf("store changed:\n%+v\n%+v", before, after)
	}
}

// installerISO builds a Palette-like installer image with xorriso and
// returns its path and the bytes of the files inside.
func installerISO(t *testing.T) (path string, kernel, initrd, rootfs []byte) {
	t.Helper()
	xorriso, err := exec.LookPath("xorriso")
	if err != nil {
		t.Fatalf("xorriso not found (install the Debian package xorriso): %v", err)
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(7, 9))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	kernel, initrd, rootfs = random(200<<10), random(100<<10+17), random(3<<20+5)
	tree := filepath.Join(dir, "tree")
	for name, b := range map[string][]byte{"boot/kernel": kernel, "boot/initrd": initrd, "rootfs.squashfs": rootfs} {
		p := filepath.Join(tree, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path = filepath.Join(dir, "palette.iso")
	if out, err := exec.Command(xorriso, "-as", "mkisofs", "-R", "-J", "-V", "PALETTE", "-o", path, tree).CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v\n%s", err, out)
	}
	return path, kernel, initrd, rootfs
}

func TestISOProfileServesArtifacts(t *testing.T) {
	e := newEnv(t, nil)
	iso, kernel, initrd, rootfs := installerISO(t)
	b, _ := json.Marshal(map[string]any{"iso": iso, "userdata": baseUD})
	var p inventory.Profile
	e.opJSON(http.MethodPut, "/profiles/palette", string(b), http.StatusOK, &p)
	if p.Kernel != inventory.ISOKernel || p.Initrd != inventory.ISOInitrd || p.RootFS != inventory.ISORootFS || p.Cmdline != inventory.ISOCmdline {
		t.Fatalf("ISO profile defaults: %+v", p)
	}

	for file, want := range map[string][]byte{"kernel": kernel, "initrd": initrd, "rootfs": rootfs} {
		r := e.get("/artifacts/palette/" + file)
		if r.status != http.StatusOK || !bytes.Equal(r.body, want) || r.header.Get("Content-Length") != strconv.Itoa(len(want)) {
			t.Errorf("GET %s: %d, %d bytes (Content-Length %s), want %d identical bytes", file, r.status, len(r.body), r.header.Get("Content-Length"), len(want))
		}
	}
	r := e.request(http.MethodGet, "/artifacts/palette/rootfs", nil, map[string]string{"Range": "bytes=1000000-1000999"})
	if r.status != http.StatusPartialContent || !bytes.Equal(r.body, rootfs[1000000:1001000]) || r.header.Get("Content-Length") != "1000" ||
		r.header.Get("Content-Range") != "bytes 1000000-1000999/"+strconv.Itoa(len(rootfs)) {
		t.Errorf("range: %d %v, %d bytes", r.status, r.header, len(r.body))
	}

	e.addHost(inventory.Host{MAC: rk1, Profile: "palette"})
	script, tok := e.stage2("mac=" + rk1)
	if !strings.Contains(script, "root=live:"+e.base+"/artifacts/palette/rootfs ") || tok == "" ||
		!strings.Contains(script, e.base+"/artifacts/palette/kernel") || !strings.Contains(script, e.base+"/artifacts/palette/initrd") {
		t.Errorf("install script:\n%s", script)
	}
	for _, l := range strings.Split(script, "\n") {
		if strings.HasPrefix(l, "kernel ") && (strings.Contains(l, "${") || !strings.Contains(l, "config_url="+e.base+"/userdata/"+tok)) {
			t.Errorf("kernel line %q", l)
		}
	}
}
