package inventory

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizeOtherMACs(t *testing.T) {
	own := "aa:bb:cc:00:00:01"
	for _, tt := range []struct {
		in     []string
		want   string // joined with ","
		reason string
	}{
		{nil, "", ""},
		{[]string{"AA-BB-CC-00-00-0B", "aa:bb:cc:00:00:0a"}, "aa:bb:cc:00:00:0a,aa:bb:cc:00:00:0b", ""},
		{[]string{"aabb.cc00.000a"}, "aa:bb:cc:00:00:0a", ""},
		{[]string{"nope"}, "", `"nope" is not a MAC address`},
		{[]string{"AA:BB:CC:00:00:01"}, "", "aa:bb:cc:00:00:01 is the host's own MAC"},
		{[]string{"aa:bb:cc:00:00:0a", "AA-BB-CC-00-00-0A"}, "", "aa:bb:cc:00:00:0a is listed twice"},
		{strings.Split(strings.Repeat("aa:bb:cc:00:00:0a,", 9), ",")[:9], "", "at most 8, got 9"},
	} {
		got, reason := normalizeOtherMACs(own, tt.in)
		if tt.reason == "" && (strings.Join(got, ",") != tt.want || reason != "") {
			t.Errorf("%q: got %q, %q; want %q", tt.in, got, reason, tt.want)
		}
		if tt.reason != "" && reason != tt.reason {
			t.Errorf("%q: reason %q, want %q", tt.in, reason, tt.reason)
		}
	}
}

// A host's other NICs are unique across the inventory, like names: the
// error names both hosts and the field; a rejected write changes nothing;
// Resolve and events follow them through updates and deletes.
func TestOtherMACs(t *testing.T) {
	s := openTestStore(t)
	mustProfile(t, s, "edge")
	mustHost(t, s, Host{MAC: "aa:bb:cc:00:00:01", Name: "alpha", Profile: "edge", OtherMACs: []string{"AA-BB-CC-00-00-A1", "aa:bb:cc:00:00:a2"}})
	mustHost(t, s, Host{MAC: "aa:bb:cc:00:00:02", Name: "beta", Profile: "edge"})
	before := mustHosts(t, s)

	for _, tc := range []struct {
		name string
		err  error
		want string
		do   func() error
	}{
		{"new host listing another's NIC", ErrExists, "host aa:bb:cc:00:00:03 (gamma): field otherMACs: aa:bb:cc:00:00:a1 is already another NIC of host aa:bb:cc:00:00:01 (alpha)",
			func() error {
				_, err := s.CreateHost(Host{MAC: "aa:bb:cc:00:00:03", Name: "gamma", Profile: "edge", OtherMACs: []string{"aa:bb:cc:00:00:a1"}})
				return err
			}},
		{"new host keyed by another's NIC", ErrExists, "host aa:bb:cc:00:00:a2: field mac: aa:bb:cc:00:00:a2 is listed as another NIC of host aa:bb:cc:00:00:01 (alpha)",
			func() error { _, err := s.CreateHost(Host{MAC: "aa:bb:cc:00:00:a2", Profile: "edge"}); return err }},
		{"listing another host's own MAC", ErrExists, "host aa:bb:cc:00:00:02 (beta): field otherMACs: aa:bb:cc:00:00:01 is the MAC of host aa:bb:cc:00:00:01 (alpha)",
			func() error {
				_, err := s.UpdateHost("aa:bb:cc:00:00:02", func(h *Host) error { h.OtherMACs = []string{"aa:bb:cc:00:00:01"}; return nil })
				return err
			}},
		{"not a MAC", ErrInvalid, `host aa:bb:cc:00:00:02 (beta): field otherMACs: "zz" is not a MAC address`,
			func() error {
				_, err := s.UpdateHost("aa:bb:cc:00:00:02", func(h *Host) error { h.OtherMACs = []string{"zz"}; return nil })
				return err
			}},
	} {
		err := tc.do()
		if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %v containing %q", tc.name, err, tc.err, tc.want)
		}
	}
	unchanged(t, s, before)
	if h, _ := s.Host("aa:bb:cc:00:00:01"); strings.Join(h.OtherMACs, ",") != "aa:bb:cc:00:00:a1,aa:bb:cc:00:00:a2" {
		t.Fatalf("stored other MACs are not normalized: %q", h.OtherMACs)
	}

	resolves := func(mac, want string) {
		t.Helper()
		got, err := s.Resolve(mac)
		if want == "" {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("Resolve(%s) = %q, %v; want ErrNotFound", mac, got, err)
			}
			return
		}
		if err != nil || got != want {
			t.Errorf("Resolve(%s) = %q, %v; want %s", mac, got, err, want)
		}
	}
	resolves("AA:BB:CC:00:00:01", "aa:bb:cc:00:00:01")
	resolves("aa-bb-cc-00-00-a2", "aa:bb:cc:00:00:01")
	resolves("aa:bb:cc:00:00:99", "")

	// Events from another NIC land on the host, singly and in a batch.
	if err := s.AddEvent("aa:bb:cc:00:00:a1", "tftp", "snponly.efi 1 bytes"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.AddEvents([]HostEvent{{MAC: "aa:bb:cc:00:00:a2", Kind: "dhcp", Detail: "x"}, {MAC: "aa:bb:cc:00:00:99", Kind: "dhcp"}}); n != 1 || err != nil {
		t.Fatalf("AddEvents = %d, %v; want 1 (the stranger skipped)", n, err)
	}
	evs, _ := s.Events("aa:bb:cc:00:00:01")
	if countKinds(evs, "tftp") != 1 || countKinds(evs, "dhcp") != 1 {
		t.Fatalf("events on the host: %+v", evs)
	}

	// Moving a NIC to another host frees it from the first; deleting the
	// host frees the rest.
	if _, err := s.UpdateHost("aa:bb:cc:00:00:01", func(h *Host) error { h.OtherMACs = []string{"aa:bb:cc:00:00:a1"}; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateHost("aa:bb:cc:00:00:02", func(h *Host) error { h.OtherMACs = []string{"aa:bb:cc:00:00:a2"}; return nil }); err != nil {
		t.Fatal(err)
	}
	resolves("aa:bb:cc:00:00:a2", "aa:bb:cc:00:00:02")
	if err := s.DeleteHost("aa:bb:cc:00:00:01"); err != nil {
		t.Fatal(err)
	}
	resolves("aa:bb:cc:00:00:a1", "")
	resolves("aa:bb:cc:00:00:a2", "aa:bb:cc:00:00:02")
	if _, err := s.CreateHost(Host{MAC: "aa:bb:cc:00:00:a1", Profile: "edge"}); err != nil {
		t.Fatalf("a freed NIC cannot become a host of its own: %v", err)
	}
}

// The manifest column otherMACs ("mac;mac"): checked within the file and
// against the store, all rows or none; a NIC may move between two hosts
// in one import; the report carries other_macs.
func TestImportOtherMACs(t *testing.T) {
	s := openTestStore(t)
	mustProfile(t, s, "edge")
	mustHost(t, s, Host{MAC: "aa:bb:cc:00:00:09", Name: "held", Profile: "edge", OtherMACs: []string{"aa:bb:cc:00:00:c9"}})

	before := mustHosts(t, s)
	_, err := s.Import(parse(t, "mac,profile,otherMACs\n"+
		"aa:bb:cc:00:00:01,edge,aa:bb:cc:00:00:a1;aa:bb:cc:00:00:b1\n"+
		"aa:bb:cc:00:00:02,edge,aa:bb:cc:00:00:b1\n"+
		"aa:bb:cc:00:00:03,edge,aa:bb:cc:00:00:c9\n"+
		"aa:bb:cc:00:00:04,edge,bogus\n"+
		"aa:bb:cc:00:00:05,edge,aa:bb:cc:00:00:06\n"+
		"aa:bb:cc:00:00:06,edge,\n"))
	var ie *ImportError
	if !errors.As(err, &ie) {
		t.Fatalf("bad manifest: %v", err)
	}
	msg := err.Error()
	for _, want := range []string{
		"aa:bb:cc:00:00:b1 is also listed by row 2",
		"aa:bb:cc:00:00:c9 is already another NIC of host aa:bb:cc:00:00:09 (held)",
		`"bogus" is not a MAC address`,
		"aa:bb:cc:00:00:06 is the MAC of row 7",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("import error does not say %q:\n%s", want, msg)
		}
	}
	unchanged(t, s, before)

	// The held host gives its NIC to a new host in the same file.
	if _, err := s.Import(parse(t, "mac,profile,otherMACs\n"+
		"aa:bb:cc:00:00:09,edge,\n"+
		"aa:bb:cc:00:00:03,edge,AA-BB-CC-00-00-C9; aa:bb:cc:00:00:c3\n")); err != nil {
		t.Fatalf("moving a NIC in one import: %v", err)
	}
	if mac, err := s.Resolve("aa:bb:cc:00:00:c9"); err != nil || mac != "aa:bb:cc:00:00:03" {
		t.Fatalf("Resolve after the move = %q, %v", mac, err)
	}
	hosts := mustHosts(t, s)
	rows := Report(hosts, nil, s.now())
	for _, r := range rows {
		if r.MAC == "aa:bb:cc:00:00:03" && strings.Join(r.OtherMACs, ";") != "aa:bb:cc:00:00:c3;aa:bb:cc:00:00:c9" {
			t.Fatalf("report row: %+v", r)
		}
		if r.MAC == "aa:bb:cc:00:00:09" && len(r.OtherMACs) != 0 {
			t.Fatalf("the giver still lists %q", r.OtherMACs)
		}
	}
}

func countKinds(evs []Event, kind string) int {
	n := 0
	for _, e := range evs {
		if e.Kind == kind {
			n++
		}
	}
	return n
}
