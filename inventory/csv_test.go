package inventory

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/stagehand-dev/stagehand/userdata"
)

func parse(t *testing.T, csv string) []Record {
	t.Helper()
	recs, err := ParseCSV(strings.NewReader(csv))
	if err != nil {
		t.Fatalf("ParseCSV: %v", err)
	}
	return recs
}

// importErr wants an *ImportError and returns its rows.
func importErr(t *testing.T, err error) []RowError {
	t.Helper()
	var ie *ImportError
	if !errors.As(err, &ie) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want an *ImportError matching ErrInvalid", err)
	}
	return ie.Rows
}

func TestParseCSV(t *testing.T) {
	recs := parse(t, "\ufeffMAC, Name ,network-type,IP_ADDRESS,Mask,gateway,tags,Serial\n"+
		"AA-BB-CC-00-00-01, node1 ,static,10.1.0.11,24,10.1.0.1,rack=r1; row = 7 ,SN 1\n"+
		"aabbcc000002,,,,,,,\n")
	if len(recs) != 2 {
		t.Fatalf("%d records", len(recs))
	}
	r := recs[0]
	want := Host{MAC: "aa:bb:cc:00:00:01", Name: "node1", Serial: "SN 1", Site: userdata.Site{
		Tags:    map[string]string{"rack": "r1", "row": "7"},
		Network: &userdata.Network{Type: "static", IPAddress: "10.1.0.11", Mask: "24", Gateway: "10.1.0.1"},
	}}
	if r.Row != 2 || !reflect.DeepEqual(r.Host, want) {
		t.Fatalf("row 2 = %d %+v (network %+v)\nwant %+v", r.Row, r.Host, r.Host.Site.Network, want)
	}
	for _, c := range []string{"mac", "name", "networkType", "ipAddress", "mask", "gateway", "tags", "serial"} {
		if !r.Set[c] {
			t.Errorf("column %s not marked set", c)
		}
	}
	if r.Set["profile"] || r.Set["userdata"] {
		t.Error("columns absent from the header marked set")
	}
	if recs[1].Row != 3 || recs[1].Host.MAC != "aa:bb:cc:00:00:02" || recs[1].Host.Site.Network != nil {
		t.Fatalf("row 3 = %+v", recs[1])
	}
}

func TestParseCSVRejects(t *testing.T) {
	tests := []struct {
		name string
		csv  string
		want []RowError // Row, Field and a Reason substring
	}{
		{"empty file", "", []RowError{{Row: 1, Reason: "empty file"}}},
		{"unknown column", "mac,colour\n", []RowError{{Row: 1, Field: "colour", Reason: "unknown column"}}},
		{"column twice", "mac,name,Name\n", []RowError{{Row: 1, Field: "Name", Reason: "column given twice"}}},
		{"no mac column", "name,serial\nn1,s1\n", []RowError{{Row: 1, Field: "mac", Reason: "required column missing"}}},
		{"bad MAC", "mac,name\naa:bb:cc:00:00:01,n1\nnot-a-mac,n2\n", []RowError{{Row: 3, Field: "mac", Reason: "not an Ethernet address"}}},
		{"empty MAC", "mac,name\n,n1\n", []RowError{{Row: 2, Field: "mac", Reason: "not an Ethernet address"}}},
		{"wrong field count", "mac,name\naa:bb:cc:00:00:01,n1,extra\naa:bb:cc:00:00:02,n2\n", []RowError{{Row: 2, Reason: "wrong number of fields"}}},
		{"bad tags", "mac,tags\naa:bb:cc:00:00:01,rack\n", []RowError{{Row: 2, Field: "tags", Reason: "not key=value"}}},
		{"duplicate tag", "mac,tags\naa:bb:cc:00:00:01,a=1;a=2\n", []RowError{{Row: 2, Field: "tags", Reason: `tag "a" given twice`}}},
		{"cell too long", "mac,userdata\naa:bb:cc:00:00:01," + strings.Repeat("x", maxCell+1) + "\n", []RowError{{Row: 2, Field: "userdata", Reason: "longer than"}}},
		{"unterminated quote", "mac,name\naa:bb:cc:00:00:01,\"n1\n", []RowError{{Reason: "quote"}}},
		{"every problem listed", "mac,tags\nbad1,\naa:bb:cc:00:00:02,x\nbad3,a=1\n", []RowError{
			{Row: 2, Field: "mac"}, {Row: 3, Field: "tags"}, {Row: 4, Field: "mac"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			recs, err := ParseCSV(strings.NewReader(tc.csv))
			// Row-level problems come back with the readable records (so
			// Import can add its own findings); each bad row is marked.
			for _, r := range recs {
				for _, w := range tc.want {
					if w.Row == r.Row && !r.bad {
						t.Errorf("row %d has a problem but is not marked bad", r.Row)
					}
				}
			}
			rows := importErr(t, err)
			if len(rows) != len(tc.want) {
				t.Fatalf("rows = %+v, want %d", rows, len(tc.want))
			}
			for i, w := range tc.want {
				g := rows[i]
				if (w.Row != 0 && g.Row != w.Row) || g.Field != w.Field || !strings.Contains(g.Reason, w.Reason) {
					t.Errorf("problem %d = %+v, want %+v", i, g, w)
				}
			}
			if !strings.HasPrefix(err.Error(), "manifest rejected, nothing imported") {
				t.Errorf("error %q", err)
			}
		})
	}
}

func TestImportCreatesAndUpdates(t *testing.T) {
	s := openTestStore(t)
	mustProfile(t, s, "edge")
	res, err := s.Import(parse(t, "mac,name,serial,profile,tags\n"+
		"aa:bb:cc:00:00:01,n1,S1,edge,rack=r1\n"+
		"aa:bb:cc:00:00:02,n2,S2,edge,\n"+
		"aa:bb:cc:00:00:03,n3,S3,,\n"))
	if err != nil || res != (ImportResult{Created: 3}) {
		t.Fatalf("Import = %+v, %v", res, err)
	}
	hs := mustHosts(t, s)
	if hs[0].State != StateReady || hs[2].State != StateDiscovered || hs[0].Site.Tags["rack"] != "r1" || hs[1].Name != "n2" || hs[0].CreatedAt.IsZero() {
		t.Fatalf("imported hosts = %+v", hs)
	}
	if k := kinds(mustEvents(t, s, "aa:bb:cc:00:00:01")); !reflect.DeepEqual(k, []string{"imported"}) {
		t.Fatalf("events = %v", k)
	}

	// One host is mid-install when the corrected manifest arrives.
	_, tok, err := s.BeginInstall("aa:bb:cc:00:00:02", "")
	if err != nil {
		t.Fatal(err)
	}
	// A manifest with only some columns leaves the others alone.
	res, err = s.Import(parse(t, "serial,mac\nS1b,aa:bb:cc:00:00:01\nS2b,aa:bb:cc:00:00:02\n"))
	if err != nil || res != (ImportResult{Updated: 2}) {
		t.Fatalf("re-import = %+v, %v", res, err)
	}
	h1, _ := s.Host("aa:bb:cc:00:00:01")
	h2, _ := s.Host("aa:bb:cc:00:00:02")
	if h1.Serial != "S1b" || h1.Name != "n1" || h1.Profile != "edge" || h1.Site.Tags["rack"] != "r1" {
		t.Fatalf("re-imported host 1 = %+v", h1)
	}
	if h2.Serial != "S2b" || h2.State != StateBooting || h2.Attempt != 1 {
		t.Fatalf("re-imported host 2 = %+v", h2)
	}
	if _, _, err := s.FetchUserData(tok, "", AnyIP, okRender); err != nil {
		t.Fatalf("the live attempt's token after a re-import: %v", err)
	}

	// A re-import that gives a discovered host a profile readies it.
	if _, err := s.Import(parse(t, "mac,profile\naa:bb:cc:00:00:03,edge\n")); err != nil {
		t.Fatal(err)
	}
	if h, _ := s.Host("aa:bb:cc:00:00:03"); h.State != StateReady {
		t.Fatalf("discovered host after re-import: %s", h.State)
	}
	ev := mustEvents(t, s, "aa:bb:cc:00:00:03")
	if last := ev[len(ev)-1]; last.Kind != "reimported" || !strings.Contains(last.Detail, "state ready") {
		t.Fatalf("last event %+v", last)
	}
}

func TestImportAllOrNothing(t *testing.T) {
	s := openTestStore(t)
	mustProfile(t, s, "edge")
	bare := testProfile(t, "bare")
	bare.UserData = ""
	if err := s.PutProfile(bare); err != nil {
		t.Fatal(err)
	}
	mustHost(t, s, Host{MAC: "aa:bb:cc:00:00:09", Name: "taken", Profile: "edge"})
	before := mustHosts(t, s)

	recs := parse(t, "mac,name,profile,networkType\n"+
		"aa:bb:cc:00:00:01,ok1,edge,\n"+ // fine on its own
		"aa:bb:cc:00:00:02,n2,nope,\n"+ // unknown profile
		"AA-BB-CC-00-00-01,n3,edge,\n"+ // same MAC as row 2
		"aa:bb:cc:00:00:04,ok1,edge,\n"+ // same name as row 2
		"aa:bb:cc:00:00:05,taken,edge,\n"+ // name held in the store
		"aa:bb:cc:00:00:06,n6,edge,static\n"+ // static without addresses
		"aa:bb:cc:00:00:07,n7,bare,\n") // renders without paletteEndpoint
	_, err := s.Import(recs)
	rows := importErr(t, err)
	want := []struct {
		row    int
		reason string
	}{
		{3, `no profile named "nope"`},
		{4, "duplicate of row 2"},
		{5, `"ok1" is also used by row 2`},
		{6, `"taken" is already used by aa:bb:cc:00:00:09`},
		{7, "ipAddress"},
		{8, "paletteEndpoint"},
	}
	if len(rows) != len(want) {
		t.Fatalf("problems = %+v, want %d", rows, len(want))
	}
	for i, w := range want {
		if rows[i].Row != w.row || !strings.Contains(rows[i].Error(), w.reason) {
			t.Errorf("problem %d = %q, want row %d mentioning %q", i, rows[i].Error(), w.row, w.reason)
		}
	}
	unchanged(t, s, before)

	// The same manifest with its problems fixed goes in whole.
	res, err := s.Import(parse(t, "mac,name,profile,paletteEndpoint\n"+
		"aa:bb:cc:00:00:01,ok1,edge,\naa:bb:cc:00:00:07,n7,bare,api.example.com\n"))
	if err != nil || res.Created != 2 {
		t.Fatalf("fixed manifest: %+v, %v", res, err)
	}
}

func TestImportNameSwap(t *testing.T) {
	s := openTestStore(t)
	mustProfile(t, s, "edge")
	mustHost(t, s, Host{MAC: "aa:bb:cc:00:00:01", Name: "n1", Profile: "edge"})
	mustHost(t, s, Host{MAC: "aa:bb:cc:00:00:02", Name: "n2", Profile: "edge"})
	mustHost(t, s, Host{MAC: "aa:bb:cc:00:00:03", Name: "n3", Profile: "edge"})

	// Two labels were stuck on the wrong chassis.
	res, err := s.Import(parse(t, "mac,name\naa:bb:cc:00:00:01,n2\naa:bb:cc:00:00:02,n1\n"))
	if err != nil || res.Updated != 2 {
		t.Fatalf("swap: %+v, %v", res, err)
	}
	h1, _ := s.Host("aa:bb:cc:00:00:01")
	h2, _ := s.Host("aa:bb:cc:00:00:02")
	if h1.Name != "n2" || h2.Name != "n1" {
		t.Fatalf("after swap: %s, %s", h1.Name, h2.Name)
	}
	// The names index followed: both names are still taken, by the right hosts.
	for _, name := range []string{"n1", "n2", "n3"} {
		_, err := s.CreateHost(Host{MAC: "aa:bb:cc:00:00:09", Name: name, Profile: "edge"})
		if !errors.Is(err, ErrExists) {
			t.Errorf("name %s free after the swap: %v", name, err)
		}
	}
	if _, err := s.UpdateHost("aa:bb:cc:00:00:01", func(h *Host) error { h.Name = "n1"; return nil }); !errors.Is(err, ErrExists) {
		t.Fatalf("n1 should belong to host 2 now: %v", err)
	}

	// Moving a name off a host that is not in the manifest is still a collision.
	_, err = s.Import(parse(t, "mac,name\naa:bb:cc:00:00:01,n3\n"))
	if rows := importErr(t, err); len(rows) != 1 || !strings.Contains(rows[0].Reason, `"n3" is already used by aa:bb:cc:00:00:03`) {
		t.Fatalf("taking another host's name: %+v", rows)
	}
}

func TestImportCannotClearProfile(t *testing.T) {
	s := openTestStore(t)
	mustProfile(t, s, "edge")
	mustHost(t, s, Host{MAC: "aa:bb:cc:00:00:01", Profile: "edge"})
	before := mustHosts(t, s)
	_, err := s.Import(parse(t, "mac,profile\naa:bb:cc:00:00:01,\n"))
	if rows := importErr(t, err); len(rows) != 1 || rows[0].Field != "profile" || !strings.Contains(rows[0].Reason, "state ready") {
		t.Fatalf("clearing a ready host's profile: %+v", rows)
	}
	unchanged(t, s, before)
}

func TestTags(t *testing.T) {
	tests := []struct {
		in   string
		want map[string]string
		err  string
	}{
		{"", nil, ""},
		{"  ", nil, ""},
		{"rack=r1", map[string]string{"rack": "r1"}, ""},
		{" rack = r1 ; row=7;;", map[string]string{"rack": "r1", "row": "7"}, ""},
		{"empty=", map[string]string{"empty": ""}, ""},
		{"url=http://x/?a=b", map[string]string{"url": "http://x/?a=b"}, ""},
		{"rack", nil, "not key=value"},
		{"=v", nil, "not key=value"},
		{"a=1;a=2", nil, "given twice"},
	}
	for _, tc := range tests {
		got, err := ParseTags(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseTags(%q) = %v, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseTags(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		if back, _ := ParseTags(FormatTags(got)); len(got) > 0 && !reflect.DeepEqual(back, got) {
			t.Errorf("round trip of %v gave %v", got, back)
		}
	}
	if got := FormatTags(map[string]string{"z": "1", "a": "2", "m": ""}); got != "a=2;m=;z=1" {
		t.Errorf("FormatTags = %q, want keys sorted", got)
	}
	if got := FormatTags(nil); got != "" {
		t.Errorf("FormatTags(nil) = %q", got)
	}
}
