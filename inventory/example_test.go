package inventory

import (
	"os"
	"testing"
)

// The rack manifest shipped in examples/ imports as it stands: every
// column is one the importer knows, and every row is valid.
func TestExampleRack(t *testing.T) {
	f, err := os.Open("../examples/rack.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := ParseCSV(f)
	if err != nil {
		t.Fatalf("examples/rack.csv: %v", err)
	}
	s := openTestStore(t)
	mustProfile(t, s, "edge")
	res, err := s.Import(recs)
	if err != nil || res.Created != 3 {
		t.Fatalf("import of examples/rack.csv: %+v, %v", res, err)
	}
	if mac, err := s.Resolve("52:54:00:10:02:01"); err != nil || mac != "52:54:00:10:00:01" {
		t.Fatalf("other NIC of node1 resolves to %q, %v", mac, err)
	}
	h, err := s.Host("52:54:00:10:00:03")
	if err != nil || h.Site.Network == nil || h.Site.Network.Type != "static" || h.Site.Network.IPAddress != "192.168.50.13" {
		t.Fatalf("node3: %+v, %v", h, err)
	}
}
