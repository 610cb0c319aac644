package inventory

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParseCSV feeds arbitrary manifests to the parser and, when it
// accepts one, to a real store: neither may panic, a rejected manifest
// must leave the store unchanged, and an accepted one must store exactly
// its rows.
func FuzzParseCSV(f *testing.F) {
	for _, s := range []string{
		"mac,name,serial,profile,tags\naa:bb:cc:00:00:01,n1,S1,edge,rack=r1;pos=1\n",
		"mac,networkType,ipAddress,mask,gateway\naa:bb:cc:00:00:02,static,10.0.0.5,24,10.0.0.1\n",
		"mac,name\naa:bb:cc:00:00:01,n1\naa:bb:cc:00:00:01,n2\n",
		"mac\n\"aa:bb:cc:00:00:01\n",
		"\ufeffMAC,Name\naabbcc000003,x\n",
		"mac,tags\nbad,=\n",
		"mac,profile,otherMACs\naa:bb:cc:00:00:04,edge,aa:bb:cc:00:00:f4;aa:bb:cc:00:00:f5\naa:bb:cc:00:00:05,edge,aa:bb:cc:00:00:f4\n",
		"mac,otherMACs\naa:bb:cc:00:00:06,aa:bb:cc:00:00:01\n",
		"",
	} {
		f.Add(s)
	}
	s := openTestStore(f)
	if err := s.PutProfile(testProfile(f, "edge")); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, manifest string) {
		recs, perr := ParseCSV(strings.NewReader(manifest))
		if perr != nil {
			var ie *ImportError
			if !errors.As(perr, &ie) || len(ie.Rows) == 0 {
				t.Fatalf("parse error is not a row list: %v", perr)
			}
		}
		before, err := s.Hosts(Filter{})
		if err != nil {
			t.Fatal(err)
		}
		res, err := s.ImportParsed(recs, perr)
		after, _ := s.Hosts(Filter{})
		if err != nil {
			if len(after) != len(before) {
				t.Fatalf("rejected manifest changed the store: %d → %d hosts", len(before), len(after))
			}
			return
		}
		if res.Created+res.Updated != len(recs) || len(after) != len(before)+res.Created {
			t.Fatalf("import of %d rows: %+v, hosts %d → %d", len(recs), res, len(before), len(after))
		}
		// Every other NIC names its host and no host is keyed by one.
		for _, h := range after {
			for _, m := range h.OtherMACs {
				if key, err := s.Resolve(m); err != nil || key != h.MAC {
					t.Fatalf("other NIC %s of %s resolves to %q, %v", m, h.MAC, key, err)
				}
				if _, err := s.Host(m); !errors.Is(err, ErrNotFound) {
					t.Fatalf("other NIC %s of %s is also a host: %v", m, h.MAC, err)
				}
			}
		}
	})
}
