package api_test

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/stagehand-dev/stagehand/inventory"
)

// GET /api/v1/backup answers with the database: a file that verifies,
// opens as a store and holds the hosts; the copy made on the way leaves
// nothing in the data dir.
func TestBackupEndpoint(t *testing.T) {
	e := newEnv(t, nil)
	e.addHost(inventory.Host{MAC: mac1, Profile: "edge", Name: "rack1-n1"})
	dataDir := filepath.Dir(e.store.Path())
	before, _ := os.ReadDir(dataDir)

	r := e.op(http.MethodGet, "/backup", "")
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/octet-stream" ||
		!regexp.MustCompile(`^attachment; filename="stagehand-\d{8}T\d{6}Z\.db"$`).MatchString(r.header.Get("Content-Disposition")) ||
		r.header.Get("Content-Length") != strconv.Itoa(len(r.body)) {
		t.Fatalf("backup: %d %v (%d bytes)", r.status, r.header, len(r.body))
	}
	dir := t.TempDir()
	p := filepath.Join(dir, inventory.DBFile)
	if err := os.WriteFile(p, r.body, 0o600); err != nil {
		t.Fatal(err)
	}
	sum, err := inventory.VerifyBackup(p)
	if err != nil || sum.Hosts != 1 || sum.Profiles != 1 {
		t.Fatalf("backup verifies as %+v, %v; want 1 host, 1 profile", sum, err)
	}
	st, err := inventory.Open(dir, inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if h, err := st.Host(mac1); err != nil || h.Name != "rack1-n1" {
		t.Errorf("restored host: %+v, %v", h, err)
	}
	if after, _ := os.ReadDir(dataDir); len(after) != len(before) {
		t.Errorf("data dir had %d entries before the backup, %d after", len(before), len(after))
	}
}
