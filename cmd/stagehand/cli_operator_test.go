package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/internal/testbuf"
	"github.com/stagehand-dev/stagehand/inventory"
)

// Global flags work before the command and after it.
func TestCLIGlobalFlagsAnywhere(t *testing.T) {
	rs := newRackServer(t)
	for _, args := range [][]string{
		{"--server", rs.url, "--token", cliToken, "status"},
		{"status", "--server", rs.url, "--token", cliToken},
		{"--server", rs.url, "host", "--token", cliToken, "list"},
		{"-o", "json", "--server", rs.url, "--token", cliToken, "status"},
	} {
		out, err := cli(t, args...)
		if err != nil || !(strings.Contains(out, "total") || strings.HasPrefix(out, "MAC")) {
			t.Errorf("stagehand %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// host add|update --site refuses unknown keys and the seed's stylus:
// site: shape, naming the key, and stores nothing.
func TestCLISiteFileStrict(t *testing.T) {
	rs := newRackServer(t)
	rs.profile("edge")
	dir := t.TempDir()
	typo := writeFile(t, dir, "typo.yaml", "paletteEndpoint: p.example\nnetwork:\n  type: static\n  gatway: 10.0.0.1\n")
	seed := writeFile(t, dir, "seed.yaml", "stylus:\n  site:\n    paletteEndpoint: p.example\n")
	top := writeFile(t, dir, "top.yaml", "paletteEndpoint: p.example\nregistrationUrl: https://x\n")
	for _, tc := range []struct{ file, want string }{
		{typo, "gatway"}, {seed, "stylus"}, {seed, "give the mapping under stylus.site"}, {top, "registrationUrl"},
	} {
		for _, verb := range []string{"add", "update"} {
			_, err := cli(t, rs.with("host", verb, cm1, "--profile", "edge", "--site", tc.file)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("host %s --site %s: %v, want %q", verb, filepath.Base(tc.file), err, tc.want)
			}
		}
	}
	if hs, _ := rs.st.Hosts(inventory.Filter{}); len(hs) != 0 {
		t.Fatalf("a refused --site stored %+v", hs)
	}
}

// host add sets every field of inventory.Fields from its flag, and host
// update changes one site field without losing the others.
func TestCLIHostFlagsEveryField(t *testing.T) {
	rs := newRackServer(t)
	rs.profile("edge")
	dir := t.TempDir()
	ud := writeFile(t, dir, "ud.yaml", "#cloud-config\nstages:\n  boot:\n    - name: \"a, b\"\n")
	vals := map[string]string{
		"name": "n1", "serial": "SN 1", "profile": "edge", "paletteEndpoint": "p.example", "registrationURL": "https://r.example",
		"projectUid": "u1", "edgeHostToken": "tok-1", "tags": "rack=r1;row=7", "networkType": "static", "ipAddress": "10.1.0.11",
		"mask": "24", "gateway": "10.1.0.1", "nameserver": "10.1.0.2", "httpProxy": "http://proxy:3128", "userdata": ud,
		"dhcpAddress": "10.0.0.21", "otherMACs": "52:54:00:ee:00:01,52:54:00:ee:00:02",
	}
	args := []string{"host", "add", cm1}
	for _, f := range inventory.Fields {
		if f.Flag == "" {
			continue
		}
		v, ok := vals[f.Name]
		if !ok {
			t.Fatalf("field %s: the test has no value for it", f.Name)
		}
		args = append(args, "--"+f.Flag, v)
	}
	mustCLI(t, rs.with(args...)...)
	h, err := rs.st.Host(cm1)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range inventory.Fields {
		want := vals[f.Name]
		switch f.Name {
		case "mac":
			want = cm1
		case "userdata":
			want = "#cloud-config\nstages:\n  boot:\n    - name: \"a, b\"\n"
		case "otherMACs":
			want = strings.ReplaceAll(want, ",", ";")
		}
		if got := f.Get(&h); got != want {
			t.Errorf("field %s (--%s): stored %q, want %q", f.Name, f.Flag, got, want)
		}
	}
	mustCLI(t, rs.with("host", "update", cm1, "--gateway", "10.1.0.254")...)
	h, _ = rs.st.Host(cm1)
	if h.Site.Network.Gateway != "10.1.0.254" || h.Site.Network.IPAddress != "10.1.0.11" || h.Site.EdgeHostToken != "tok-1" || h.Site.Tags["rack"] != "r1" {
		t.Fatalf("update --gateway: site %+v network %+v", h.Site, h.Site.Network)
	}
	// Every field is a flag of host update too.
	upd := newRoot(context.Background(), io.Discard)
	cmd, _, err := upd.Find([]string{"host", "update"})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range inventory.Fields {
		if f.Flag != "" && cmd.Flags().Lookup(f.Flag) == nil {
			t.Errorf("host update has no --%s", f.Flag)
		}
	}
}

// host show prints the whole record, one line per value, secrets
// masked; -o json the same record.
func TestCLIHostShowWhole(t *testing.T) {
	rs := newRackServer(t)
	rs.profile("edge")
	site := writeFile(t, t.TempDir(), "site.yaml", "edgeHostToken: SEKRET\ntags:\n  rack: r9\nnetwork:\n  type: static\n  ipAddress: 10.1.0.11\n  mask: 24\n  gateway: 10.1.0.1\n")
	mustCLI(t, rs.with("host", "add", cm1, "--profile", "edge", "--name", "n1", "--site", site, "--dhcp-address", "10.0.0.9", "--other-macs", "52:54:00:ee:00:09")...)
	tok := rs.boot(cm1)
	res, err := http.Post(rs.url+"/callback/"+tok+"/failed", "text/plain", strings.NewReader("disk\nnot found"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	out := mustCLI(t, rs.with("host", "show", cm1)...)
	for _, want := range []string{"site.network.gateway:", "10.1.0.1", "rack=r9", "52:54:00:ee:00:09", "10.0.0.9", `disk\nnot found`, "failed", "createdAt:", "site.edgeHostToken:", "********"} {
		if !strings.Contains(out, want) {
			t.Errorf("host show lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "SEKRET") {
		t.Errorf("host show prints the secret:\n%s", out)
	}
	js := mustCLI(t, rs.with("host", "show", cm1, "-o", "json")...)
	if strings.Contains(js, "SEKRET") || !strings.Contains(js, `"failedMessage": "disk\\nnot found"`) || !strings.Contains(js, `"gateway": "10.1.0.1"`) {
		t.Errorf("host show -o json:\n%s", js)
	}
}

// A failure message with a newline stays one line in the events table,
// in the export's CSV row and in JSON: the store keeps it escaped.
func TestCLIMessagesOneLine(t *testing.T) {
	rs := newRackServer(t)
	rs.profile("edge")
	mustCLI(t, rs.with("host", "add", cm1, "--profile", "edge")...)
	tok := rs.boot(cm1)
	msg := "disk\nnot found\tat"
	res, err := http.Post(rs.url+"/callback/"+tok+"/failed", "text/plain", strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	out := mustCLI(t, rs.with("host", "events", cm1)...)
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if !strings.HasPrefix(l, "TIME") && !regexpDate.MatchString(l) {
			t.Errorf("events table line %q is not an event row:\n%s", l, out)
		}
	}
	if !strings.Contains(out, `disk\nnot found\tat`) {
		t.Errorf("events table lacks the escaped message:\n%s", out)
	}
	var evs []inventory.Event
	if err := json.Unmarshal([]byte(mustCLI(t, rs.with("host", "events", cm1, "-o", "json")...)), &evs); err != nil || evs[len(evs)-1].Detail != `disk\nnot found\tat` {
		t.Errorf("events JSON: %+v %v", evs, err)
	}
	csvOut := mustCLI(t, rs.with("host", "export")...)
	if n := strings.Count(csvOut, "\n"); n != 2 {
		t.Errorf("export of one host has %d lines:\n%s", n, csvOut)
	}
	recs, err := csv.NewReader(strings.NewReader(csvOut)).ReadAll()
	if err != nil || recs[1][12] != `disk\nnot found\tat` {
		t.Errorf("export failed_message: %q %v", recs, err)
	}
}

// host export takes every filter host list takes, --stalled included,
// and carries secrets only with --include-secrets.
func TestCLIExportFilters(t *testing.T) {
	rs := newRackServer(t)
	rs.profile("edge")
	site := writeFile(t, t.TempDir(), "site.yaml", "edgeHostToken: SEKRET\n")
	mustCLI(t, rs.with("host", "add", cm1, "--profile", "edge", "--site", site)...)
	mustCLI(t, rs.with("host", "add", cm2, "--profile", "edge")...)
	rs.boot(cm1)
	rs.skew.Store(int64(2 * time.Hour))
	list := mustCLI(t, rs.with("host", "list", "--stalled")...)
	out := mustCLI(t, rs.with("host", "export", "--stalled")...)
	if !strings.Contains(list, cm1) || strings.Contains(list, cm2) || !strings.Contains(out, cm1) || strings.Contains(out, cm2) {
		t.Fatalf("export --stalled:\n%s\nlist --stalled:\n%s", out, list)
	}
	if all := mustCLI(t, rs.with("host", "export")...); strings.Contains(all, "SEKRET") || !strings.Contains(all, cm2) {
		t.Errorf("export without --include-secrets:\n%s", all)
	}
	var rows []inventory.ReportRow
	if err := json.Unmarshal([]byte(mustCLI(t, rs.with("host", "export", "-o", "json")...)), &rows); err != nil || len(rows) != 2 {
		t.Errorf("export -o json: %+v %v", rows, err)
	}
	if all := mustCLI(t, rs.with("host", "export", "--include-secrets")...); !strings.Contains(all, "SEKRET") {
		t.Errorf("export --include-secrets:\n%s", all)
	}
	// The export imports back into an empty inventory.
	file := filepath.Join(t.TempDir(), "export.csv")
	mustCLI(t, rs.with("host", "export", "--include-secrets", "-f", file)...)
	rs2 := newRackServer(t)
	rs2.profile("edge")
	mustCLI(t, rs2.with("host", "import", file)...)
	if h, err := rs2.st.Host(cm1); err != nil || h.Site.EdgeHostToken != "SEKRET" || h.Profile != "edge" {
		t.Fatalf("imported export: %+v %v", h, err)
	}
}

// profile add refuses a name in use (the old one is left whole);
// profile update changes only the flags given.
func TestCLIProfileAddUpdate(t *testing.T) {
	rs := newRackServer(t)
	rs.profile("edge", "--cmdline", "console=ttyS0")
	before, _ := rs.st.Profile("edge")
	dir := t.TempDir()
	k := writeFile(t, dir, "vmlinuz2", "kernel2")
	i := writeFile(t, dir, "initrd2", "initrd2")
	_, err := cli(t, rs.with("profile", "add", "edge", "--kernel", k, "--initrd", i)...)
	if err == nil || !strings.Contains(err.Error(), "already exists") || !strings.Contains(err.Error(), "profile update") {
		t.Fatalf("profile add over an existing name: %v", err)
	}
	if p, _ := rs.st.Profile("edge"); p.Cmdline != "console=ttyS0" || p.UserData != before.UserData || p.Kernel != before.Kernel {
		t.Fatalf("refused add changed the profile: %+v", p)
	}
	mustCLI(t, rs.with("profile", "update", "edge", "--kernel", k, "--install-timeout", "45m")...)
	p, _ := rs.st.Profile("edge")
	if p.Kernel != k || p.Initrd != before.Initrd || p.Cmdline != "console=ttyS0" || p.UserData != before.UserData || p.InstallTimeout() != 45*time.Minute {
		t.Fatalf("profile update --kernel: %+v", p)
	}
	if _, err := cli(t, rs.with("profile", "update", "edge")...); err == nil || !strings.Contains(err.Error(), "nothing to change") {
		t.Errorf("profile update without flags: %v", err)
	}
}

// Duration flags refuse zero and negative values before any request.
func TestCLIDurationFlags(t *testing.T) {
	for _, args := range [][]string{
		{"watch", "--interval", "0s"}, {"watch", "--interval", "-1s"}, {"watch", "--timeout", "0"},
		{"profile", "add", "p", "--install-timeout", "0s"}, {"profile", "update", "p", "--install-timeout", "-5m"},
	} {
		// No server and no token: a flag error comes first.
		_, err := cli(t, append(args, "--server", "127.0.0.1:1", "--token", "x")...)
		if err == nil || !strings.Contains(err.Error(), "above zero") {
			t.Errorf("stagehand %s: %v", strings.Join(args, " "), err)
		}
	}
}

func TestServerURL(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:8080":          "http://127.0.0.1:8080",
		"stagehand.lab:8080":      "http://stagehand.lab:8080",
		"https://sh.example/":     "https://sh.example",
		"http://[::1]:8080":       "http://[::1]:8080",
		"http://10.0.0.1:8080/x/": "http://10.0.0.1:8080/x",
	} {
		if got, err := serverURL(in); err != nil || got != want {
			t.Errorf("serverURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "ftp://x:21", "http://", "10.0.0.1:99999", "http://x:8080?a=b", "ht tp://x"} {
		if got, err := serverURL(in); err == nil || !strings.Contains(err.Error(), "want http://HOST:PORT") {
			t.Errorf("serverURL(%q) = %q, %v; want an error", in, got, err)
		}
	}
	// STAGEHAND_SERVER without a scheme reaches the server.
	rs := newRackServer(t)
	t.Setenv("STAGEHAND_SERVER", strings.TrimPrefix(rs.url, "http://"))
	if out, err := cli(t, "status", "--token", cliToken); err != nil || !strings.Contains(out, "total") {
		t.Fatalf("STAGEHAND_SERVER=host:port: %v\n%s", err, out)
	}
}

// delete honours --output json: it prints what it deleted.
func TestCLIDeleteJSON(t *testing.T) {
	rs := newRackServer(t)
	rs.profile("edge")
	mustCLI(t, rs.with("host", "add", cm1, "--profile", "edge", "--name", "d1")...)
	var got struct {
		Deleted map[string]any `json:"deleted"`
	}
	if err := json.Unmarshal([]byte(mustCLI(t, rs.with("host", "delete", cm1, "-o", "json")...)), &got); err != nil || got.Deleted["mac"] != cm1 || got.Deleted["name"] != "d1" {
		t.Fatalf("host delete -o json: %+v %v", got, err)
	}
	if err := json.Unmarshal([]byte(mustCLI(t, rs.with("profile", "delete", "edge", "--output", "json")...)), &got); err != nil || got.Deleted["name"] != "edge" {
		t.Fatalf("profile delete -o json: %+v %v", got, err)
	}
	if out := mustCLI(t, rs.with("profile", "list")...); strings.Contains(out, "edge") {
		t.Fatalf("profile not deleted:\n%s", out)
	}
}

func TestCLIVersionAndCompletion(t *testing.T) {
	out := mustCLI(t, "version")
	if !strings.HasPrefix(out, "stagehand ") || !strings.Contains(out, "commit ") || !strings.Contains(out, "go1.") {
		t.Errorf("version:\n%s", out)
	}
	var v versionInfo
	if err := json.Unmarshal([]byte(mustCLI(t, "version", "-o", "json")), &v); err != nil || !strings.HasPrefix(v.GoVersion, "go1.") || v.Version == "" {
		t.Errorf("version -o json: %+v %v", v, err)
	}
	if out := mustCLI(t, "completion", "bash"); !strings.Contains(out, "__start_stagehand") {
		t.Errorf("completion bash:\n%.300s", out)
	}
	if out := mustCLI(t, "completion", "zsh"); !strings.HasPrefix(out, "#compdef stagehand") {
		t.Errorf("completion zsh:\n%.300s", out)
	}
	if _, err := cli(t, "completion", "tcsh"); err == nil {
		t.Error("completion tcsh: no error")
	}
}

// regexpDate matches the start of an event row.
var regexpDate = regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  `)

// host events --follow prints the stored events, then each new one as
// the server's stream delivers it, in order, until interrupted.
func TestCLIEventsFollow(t *testing.T) {
	rs := newRackServer(t)
	rs.profile("edge")
	mustCLI(t, rs.with("host", "add", cm1, "--profile", "edge")...)

	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, rs.with("host", "events", cm1, "--follow", "-o", "json"), pw)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	next := func() inventory.StoredEvent {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("stream output ended: %v", lines.Err())
		}
		var e inventory.StoredEvent
		if err := json.Unmarshal(lines.Bytes(), &e); err != nil {
			t.Fatalf("line %q: %v", lines.Text(), err)
		}
		return e
	}
	if e := next(); e.Kind != "created" || e.MAC != cm1 {
		t.Fatalf("first stored event %+v", e)
	}
	rs.waitSubscribers(1)
	rs.install(cm1, "done")
	stored, _ := rs.st.Events(cm1)
	for _, want := range stored[1:] {
		if e := next(); e.Kind != want.Kind || e.Attempt != want.Attempt {
			t.Fatalf("live event %+v, want %+v", e, want)
		}
	}
	cancel()
	go io.Copy(io.Discard, pr)
	if err := <-done; err != nil {
		t.Fatalf("host events --follow after interrupt: %v", err)
	}
}

// watch ends on an event, not on a poll: with no live attempt there is
// no stall to wake for, so only the stream can tell it the rack is done
// before the timeout.
func TestCLIWatchFollowsStream(t *testing.T) {
	rs := newRackServer(t)
	rs.profile("edge")
	mustCLI(t, rs.with("host", "add", cm1, "--profile", "edge")...)
	done := make(chan error, 1)
	var out strings.Builder
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		done <- run(ctx, rs.with("watch", "--interval", "50ms", "--timeout", "15s"), &out)
	}()
	rs.waitSubscribers(1)
	rs.install(cm1, "done")
	if err := <-done; err != nil {
		t.Fatalf("watch: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "1/1 installed") {
		t.Fatalf("watch printed:\n%s", out.String())
	}
}

// A stall is time passing, not an event: watch wakes at the instant the
// status names (nextStall) and shows the host stalled with no event and
// no poll; it then still ends on the install's event.
func TestCLIWatchWakesForAStall(t *testing.T) {
	rs := newRackServer(t)
	rs.profile("edge", "--install-timeout", "1s")
	mustCLI(t, rs.with("host", "add", cm1, "--profile", "edge")...)
	tok := rs.boot(cm1)
	out := &testbuf.Buffer{}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		done <- run(ctx, rs.with("watch", "--interval", "50ms", "--timeout", "25s"), out)
	}()
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(out.String(), "1 stalled"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("watch never showed the stall:\n%s", out.String())
		}
	}
	res, err := http.Post(rs.url+"/callback/"+tok+"/done", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if err := <-done; err != nil {
		t.Fatalf("watch: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "1/1 installed") {
		t.Fatalf("watch printed:\n%s", out.String())
	}
}

// Operator commands read STAGEHAND_<FLAG> and the --config YAML file, a
// flag beating the environment beating the file, and refuse a file key
// that is no flag of the command.
func TestCLIEnvAndConfig(t *testing.T) {
	rs := newRackServer(t)
	rs.profile("edge")
	dir := t.TempDir()
	cfg := writeFile(t, dir, "cli.yaml", "server: "+rs.url+"\ntoken: "+cliToken+"\noutput: json\n")
	out := mustCLI(t, "status", "--config", cfg)
	if !strings.Contains(out, `"total": 0`) {
		t.Fatalf("status --config (output: json):\n%s", out)
	}
	t.Setenv("STAGEHAND_OUTPUT", "table")
	if out := mustCLI(t, "status", "--config", cfg); !strings.Contains(out, "STATE") {
		t.Fatalf("STAGEHAND_OUTPUT=table over the file:\n%s", out)
	}
	if out := mustCLI(t, "status", "--config", cfg, "-o", "json"); !strings.Contains(out, `"total"`) {
		t.Fatalf("-o json over STAGEHAND_OUTPUT:\n%s", out)
	}
	t.Setenv("STAGEHAND_CONFIG", cfg)
	if out := mustCLI(t, "host", "list"); !strings.HasPrefix(out, "MAC") {
		t.Fatalf("host list with STAGEHAND_CONFIG:\n%s", out)
	}
	bad := writeFile(t, dir, "bad.yaml", "server: "+rs.url+"\ntokn: x\n")
	if _, err := cli(t, "status", "--config", bad); err == nil || !strings.Contains(err.Error(), "unknown key(s) tokn") {
		t.Fatalf("unknown config key: %v", err)
	}
}
