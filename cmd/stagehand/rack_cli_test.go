package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/stagehand-dev/stagehand/api"
	"github.com/stagehand-dev/stagehand/attrib"
	"github.com/stagehand-dev/stagehand/events"
	"github.com/stagehand-dev/stagehand/inventory"
	"github.com/stagehand-dev/stagehand/iso9660"
)

// rackServer is cliServer with a clock the test can move forward (for
// stalled hosts) and the machine endpoints reachable, so hosts can be
// driven through real install attempts.
type rackServer struct {
	t    *testing.T
	url  string
	st   *inventory.Store
	skew atomic.Int64
	conn []string
	who  *attrib.Index
	feed *events.Hub // the store's live feed, behind GET /api/v1/events
}

func newRackServer(t *testing.T) *rackServer {
	t.Helper()
	feed := events.NewHub()
	st, err := inventory.Open(t.TempDir(), inventory.Options{LockTimeout: 200 * time.Millisecond, OnEvents: feed.Publish})
	if err != nil {
		t.Fatal(err)
	}
	rs := &rackServer{t: t, st: st, who: attrib.New(attrib.Config{}), feed: feed}
	srv := httptest.NewUnstartedServer(api.New(api.Config{
		Store: st, Base: "http://127.0.0.1:1", Token: cliToken, Attrib: rs.who, Feed: feed,
		Log: zerolog.New(zerolog.NewTestWriter(t)),
		Now: func() time.Time { return time.Now().Add(time.Duration(rs.skew.Load())) },
	}))
	// Open event streams end when the feed does, as in the real server.
	srv.Config.RegisterOnShutdown(feed.Close)
	srv.Start()
	t.Cleanup(func() {
		feed.Close()
		srv.Close()
		st.Close()
	})
	rs.url = srv.URL
	rs.conn = []string{"--server", srv.URL, "--token", cliToken}
	return rs
}

func (rs *rackServer) with(args ...string) []string { return append(args, rs.conn...) }

// waitSubscribers waits, bounded, until n clients follow the live feed.
func (rs *rackServer) waitSubscribers(n int) {
	rs.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); rs.feed.Subscribers() < n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			rs.t.Fatalf("%d stream subscribers after 10s, want %d", rs.feed.Subscribers(), n)
		}
	}
}

// profile stores an edge-like profile through the CLI.
func (rs *rackServer) profile(name string, extra ...string) {
	rs.t.Helper()
	dir := rs.t.TempDir()
	k := writeFile(rs.t, dir, "vmlinuz", "kernel")
	i := writeFile(rs.t, dir, "initrd", "initrd")
	ud := writeFile(rs.t, dir, "base.yaml", "stylus:\n  site:\n    paletteEndpoint: api.spectrocloud.example\n")
	mustCLI(rs.t, rs.with(append([]string{"profile", "add", name, "--kernel", k, "--initrd", i, "--userdata", ud}, extra...)...)...)
}

var tokenInScript = regexp.MustCompile(`config_url=\S+/userdata/(\S+)`)

// boot plays the host's DHCP exchange (as the server overhears it) and
// its stage 2, and returns the attempt's token.
func (rs *rackServer) boot(mac string) string {
	rs.t.Helper()
	hw, err := net.ParseMAC(mac)
	if err != nil {
		rs.t.Fatal(err)
	}
	rs.who.Observe(netip.MustParseAddr("127.0.0.1"), hw, attrib.SourceDHCP)
	res, err := http.Get(rs.url + "/ipxe?mac=" + mac)
	if err != nil {
		rs.t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	m := tokenInScript.FindSubmatch(b)
	if res.StatusCode != http.StatusOK || m == nil {
		rs.t.Fatalf("stage 2 for %s: %d\n%s", mac, res.StatusCode, b)
	}
	return string(m[1])
}

// install boots mac and reports result ("done" or "failed").
func (rs *rackServer) install(mac, result string) {
	rs.t.Helper()
	tok := rs.boot(mac)
	res, err := http.Post(rs.url+"/callback/"+tok+"/"+result, "text/plain", strings.NewReader("test says "+result))
	if err != nil {
		rs.t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		rs.t.Fatalf("callback %s for %s: %d", result, mac, res.StatusCode)
	}
}

func (rs *rackServer) state(mac string) string {
	rs.t.Helper()
	h, err := rs.st.Host(mac)
	if err != nil {
		rs.t.Fatal(err)
	}
	return h.State.String()
}

const (
	cm1 = "52:54:00:dd:00:01"
	cm2 = "52:54:00:dd:00:02"
	cm3 = "52:54:00:dd:00:03"
	cm4 = "52:54:00:dd:00:04"
)

func TestCLIRackWorkflow(t *testing.T) {
	rs := newRackServer(t)
	rs.profile("edge")
	dir := t.TempDir()

	manifest := writeFile(t, dir, "rack.csv", "mac,name,profile,tags\n"+
		cm1+",r1n1,edge,rack=r1\n"+cm2+",r1n2,edge,rack=r1\n"+cm3+",r2n1,edge,rack=r2\n"+cm4+",r2n2,,rack=r2\n")
	if out := mustCLI(t, rs.with("host", "import", manifest)...); out != "imported "+manifest+": 4 created, 0 updated\n" {
		t.Fatalf("import printed %q", out)
	}

	before, _ := rs.st.Hosts(inventory.Filter{})
	bad := writeFile(t, dir, "bad.csv", "mac,name,profile\nnot-a-mac,x1,edge\n52:54:00:dd:00:09,x2,nope\n52:54:00:dd:00:0a,x3,edge\n")
	_, err := cli(t, rs.with("host", "import", bad)...)
	if err == nil {
		t.Fatal("bad manifest imported")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "2 problem(s)") ||
		!strings.HasPrefix(lines[1], "  row 2") || !strings.Contains(lines[1], "field mac") ||
		!strings.HasPrefix(lines[2], "  row 3") || !strings.Contains(lines[2], `no profile named "nope"`) {
		t.Fatalf("bad manifest error:\n%v", err)
	}
	if after, _ := rs.st.Hosts(inventory.Filter{}); len(after) != len(before) {
		t.Fatalf("bad manifest stored hosts: %d, want %d", len(after), len(before))
	}

	out := mustCLI(t, rs.with("host", "list", "--tag", "rack=r1")...)
	if !strings.Contains(out, cm1) || !strings.Contains(out, cm2) || strings.Contains(out, cm3) || strings.Contains(out, cm4) {
		t.Fatalf("host list --tag rack=r1:\n%s", out)
	}

	out = mustCLI(t, rs.with("host", "assign", "--profile", "edge", "--state", "discovered")...)
	if out != "assigned 1 host(s)\n  "+cm4+"\n" || rs.state(cm4) != "ready" {
		t.Fatalf("assign printed %q; %s is %s", out, cm4, rs.state(cm4))
	}
	if _, err := cli(t, rs.with("host", "assign", "--profile", "edge")...); err == nil || !strings.Contains(err.Error(), "--all") {
		t.Fatalf("assign without a filter: %v", err)
	}

	rs.install(cm1, "done")
	rs.install(cm2, "failed")
	if _, err := cli(t, rs.with("host", "reprovision")...); err == nil || !strings.Contains(err.Error(), "--all") {
		t.Fatalf("reprovision without a filter: %v", err)
	}
	if rs.state(cm1) != "installed" || rs.state(cm2) != "failed" {
		t.Fatal("reprovision without a filter changed hosts")
	}
	out = mustCLI(t, rs.with("host", "reprovision", "--state", "failed")...)
	if out != "reprovisioned 1 host(s)\n  "+cm2+"\n" || rs.state(cm2) != "ready" || rs.state(cm1) != "installed" {
		t.Fatalf("reprovision --state failed printed %q", out)
	}

	out = mustCLI(t, rs.with("host", "update", cm3, "--name", "renamed")...)
	if r := row(t, out, cm3); r[1] != "renamed" || r[2] != "edge" {
		t.Fatalf("update printed:\n%s", out)
	}
	if h, _ := rs.st.Host(cm3); h.Name != "renamed" || !reflect.DeepEqual(h.Site.Tags, map[string]string{"rack": "r2"}) {
		t.Fatalf("updated host %+v", h)
	}

	isoPath := filepath.Join(dir, "seed.iso")
	if out := mustCLI(t, rs.with("host", "cidata", cm3, "-f", isoPath)...); out != "" {
		t.Errorf("cidata -f printed %q", out)
	}
	raw, err := os.ReadFile(isoPath)
	if err != nil {
		t.Fatal(err)
	}
	im, err := iso9660.Open(bytes.NewReader(raw), int64(len(raw)))
	if err != nil || im.VolumeID() != "cidata" {
		t.Fatalf("cidata ISO: %v", err)
	}
	if f, err := im.Stat("/user-data"); err != nil || f.Size == 0 {
		t.Fatalf("cidata user-data: %+v %v", f, err)
	}
	if rs.state(cm3) != "booting" {
		t.Errorf("after cidata %s is %s", cm3, rs.state(cm3))
	}
	if _, err := cli(t, rs.with("host", "cidata", cm3)...); err == nil || !strings.Contains(err.Error(), "-f FILE") {
		t.Errorf("cidata without -f: %v", err)
	}

	report := filepath.Join(dir, "report.json")
	if out := mustCLI(t, rs.with("host", "export", "--format", "json", "-f", report)...); out != "" {
		t.Errorf("export -f printed %q", out)
	}
	var rows []inventory.ReportRow
	if b, err := os.ReadFile(report); err != nil || json.Unmarshal(b, &rows) != nil {
		t.Fatalf("report %s: %v", b, err)
	}
	if len(rows) != 4 || rows[0].MAC != cm1 || rows[0].State != "installed" || rows[0].InstalledAt.IsZero() ||
		rows[1].State != "ready" || rows[1].Attempt != 1 || rows[2].Name != "renamed" || rows[2].State != "booting" {
		t.Fatalf("report rows %+v", rows)
	}
	out = mustCLI(t, rs.with("host", "export", "--tag", "rack=r1")...)
	if !strings.HasPrefix(out, "mac,name,serial") || strings.Count(out, "\n") != 3 {
		t.Errorf("csv export --tag rack=r1:\n%s", out)
	}
	if _, err := cli(t, rs.with("host", "export", "--format", "xml")...); err == nil || !strings.Contains(err.Error(), "want csv or json") {
		t.Errorf("export --format xml: %v", err)
	}
}

// buildISO makes a Palette-like installer image with xorriso.
func buildISO(t *testing.T) string {
	t.Helper()
	xorriso, err := exec.LookPath("xorriso")
	if err != nil {
		t.Fatalf("xorriso not found (install the Debian package xorriso): %v", err)
	}
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	if err := os.MkdirAll(filepath.Join(tree, "boot"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, tree, "boot/kernel", strings.Repeat("k", 5000))
	writeFile(t, tree, "boot/initrd", strings.Repeat("i", 7000))
	writeFile(t, tree, "rootfs.squashfs", strings.Repeat("r", 9000))
	iso := filepath.Join(dir, "palette.iso")
	if out, err := exec.Command(xorriso, "-as", "mkisofs", "-R", "-J", "-V", "PALETTE", "-o", iso, tree).CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v\n%s", err, out)
	}
	return iso
}

func TestCLIISOProfileAndStatus(t *testing.T) {
	rs := newRackServer(t)
	iso := buildISO(t)
	// Relative --iso is made absolute on the client, as --kernel is.
	t.Chdir(filepath.Dir(iso))
	ud := writeFile(t, t.TempDir(), "base.yaml", "stylus:\n  site:\n    paletteEndpoint: api.spectrocloud.example\n")
	out := mustCLI(t, rs.with("profile", "add", "palette", "--iso", filepath.Base(iso), "--userdata", ud, "--install-timeout", "1s")...)
	if r := row(t, out, "palette"); r[1] != iso+":/boot/kernel" || r[2] != iso+":/boot/initrd" || r[3] != iso+":/rootfs.squashfs" || r[5] != "1s" {
		t.Fatalf("profile add --iso printed:\n%s", out)
	}
	rs.profile("edge")
	out = mustCLI(t, rs.with("profile", "list")...)
	if r := row(t, out, "palette"); r[1] != iso+":/boot/kernel" {
		t.Fatalf("profile list:\n%s", out)
	}
	if r := row(t, out, "edge"); strings.Contains(r[1], ".iso:") {
		t.Fatalf("profile list shows an ISO for a file profile:\n%s", out)
	}
	if _, err := cli(t, rs.with("profile", "add", "broken", "--iso", iso, "--kernel", "/boot/vmlinuz")...); err == nil ||
		!strings.Contains(err.Error(), "/boot/ holds: initrd, kernel") {
		t.Fatalf("profile with a path not in the ISO: %v", err)
	}

	mustCLI(t, rs.with("host", "add", cm1, "--profile", "palette", "--name", "slow1")...)
	mustCLI(t, rs.with("host", "add", cm2, "--profile", "edge", "--name", "bad2")...)
	rs.boot(cm1)
	rs.install(cm2, "failed")
	rs.skew.Store(int64(5 * time.Second)) // past palette's 1s

	out = mustCLI(t, rs.with("status")...)
	if !strings.Contains(out, "failed: "+cm2+" (bad2)\n") || !strings.Contains(out, "stalled: "+cm1+" (slow1)\n") {
		t.Fatalf("status:\n%s", out)
	}
	out = mustCLI(t, rs.with("host", "list", "--stalled")...)
	if r := row(t, out, cm1); r[3] != "booting" || r[4] != "(stalled)" || strings.Contains(out, cm2) {
		t.Fatalf("host list --stalled:\n%s", out)
	}
}

func TestCLIWatch(t *testing.T) {
	rs := newRackServer(t)
	rs.profile("edge")
	mustCLI(t, rs.with("host", "add", cm1, "--profile", "edge", "--name", "w1")...)

	out, err := cli(t, rs.with("watch", "--interval", "10ms", "--timeout", "50ms")...)
	if err == nil || !strings.Contains(err.Error(), "deadline exceeded") {
		t.Fatalf("watch with a ready host: %v\n%s", err, out)
	}
	if !strings.Contains(out, "0/1 installed, 1 in progress") {
		t.Errorf("watch printed %q", out)
	}

	rs.install(cm1, "done")
	out, err = cli(t, rs.with("watch", "--interval", "10ms")...)
	if err != nil || !strings.Contains(out, "1/1 installed") {
		t.Fatalf("watch with every host installed: %v\n%s", err, out)
	}

	mustCLI(t, rs.with("host", "add", cm2, "--profile", "edge", "--name", "w2")...)
	rs.install(cm2, "failed")
	out, err = cli(t, rs.with("watch", "--interval", "10ms", "--timeout", "5s")...)
	if err == nil || !strings.Contains(err.Error(), "1 host(s) failed: "+cm2+" (w2)") {
		t.Fatalf("watch with a failed host: %v\n%s", err, out)
	}
}
