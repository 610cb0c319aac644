package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stagehand-dev/stagehand/inventory"
)

// `stagehand backup -f FILE` writes a verified copy of the running
// server's inventory that a server can start on, and reports it; a
// refused or cut download leaves no FILE behind.
func TestBackupCommand(t *testing.T) {
	rs := newRackServer(t)
	rs.profile("edge")
	for _, mac := range []string{"52:54:00:00:0b:01", "52:54:00:00:0b:02"} {
		mustCLI(t, rs.with("host", "add", mac, "--profile", "edge")...)
	}
	rs.install("52:54:00:00:0b:01", "done")

	dir := t.TempDir()
	file := filepath.Join(dir, "inv.db")
	out := mustCLI(t, rs.with("backup", "-f", file)...)
	if !strings.HasPrefix(out, file+": ") || !strings.Contains(out, "2 hosts, 1 profiles") || !strings.HasSuffix(out, "verified\n") {
		t.Errorf("backup said %q", out)
	}
	// stagehand restore puts it in place as a data dir's database: the
	// installed host is there.
	data := t.TempDir()
	out = mustCLI(t, "restore", file, "--data-dir", data)
	if out != "restored "+file+" into "+filepath.Join(data, inventory.DBFile)+": 2 hosts, 1 profiles, 0 leases\n" {
		t.Errorf("restore said %q", out)
	}
	if _, err := cli(t, "restore", filepath.Join(dir, "missing.db"), "--data-dir", data); err == nil {
		t.Error("restore of a missing file succeeded")
	}
	st, err := inventory.Open(data, inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if h, err := st.Host("52:54:00:00:0b:01"); err != nil || h.State != inventory.StateInstalled {
		t.Errorf("restored host: %+v, %v", h, err)
	}
	st.Close()

	var res backupResult
	if err := json.Unmarshal([]byte(mustCLI(t, rs.with("backup", "-f", file, "--output", "json")...)), &res); err != nil ||
		res.Hosts != 2 || res.Profiles != 1 || res.File != file || res.Bytes <= 0 {
		t.Errorf("json: %+v, %v", res, err)
	}

	// Refusals leave nothing: no -f, a wrong token, a download cut short.
	if _, err := cli(t, rs.with("backup")...); err == nil || !strings.Contains(err.Error(), "-f FILE is required") {
		t.Errorf("without -f: %v", err)
	}
	bad := filepath.Join(dir, "bad.db")
	if _, err := cli(t, "backup", "-f", bad, "--server", rs.url, "--token", "wrong"); err == nil {
		t.Error("backup with a wrong token succeeded")
	}
	cut := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "65536")
		w.Write(make([]byte, 1000))
	}))
	defer cut.Close()
	if _, err := cli(t, "backup", "-f", bad, "--server", cut.URL, "--token", cliToken); err == nil || !strings.Contains(err.Error(), "cut") {
		t.Errorf("cut download: %v", err)
	}
	notDB := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.Repeat("not a database ", 100)))
	}))
	defer notDB.Close()
	if _, err := cli(t, "backup", "-f", bad, "--server", notDB.URL, "--token", cliToken); err == nil || !strings.Contains(err.Error(), "not a stagehand database") {
		t.Errorf("not a database: %v", err)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Name() != "inv.db" {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}
