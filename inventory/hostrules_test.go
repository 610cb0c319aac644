package inventory

import (
	"errors"
	"strings"
	"testing"

	"github.com/stagehand-dev/stagehand/inventory/storage"
	"github.com/stagehand-dev/stagehand/userdata"
)

// wantErr fails unless err matches target and mentions every one of want.
func wantErr(t *testing.T, what string, err, target error, want ...string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: err = %v, want %v", what, err, target)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: %q does not mention %q", what, err, w)
		}
	}
}

// Deleting a host needs its own MAC: the MAC of another host's other NIC
// is refused, naming that host, and nothing is deleted.
func TestDeleteHostByOtherNIC(t *testing.T) {
	s := openTestStore(t)
	mustProfile(t, s, "edge")
	mustHost(t, s, Host{MAC: "52:54:00:00:09:01", Name: "node1", Profile: "edge", OtherMACs: []string{"52:54:00:00:09:02"}})
	before := mustHosts(t, s)
	wantErr(t, "DeleteHost(other NIC)", s.DeleteHost("52-54-00-00-09-02"), ErrConflict, "52:54:00:00:09:02", "52:54:00:00:09:01 (node1)")
	unchanged(t, s, before)
	if len(mustEvents(t, s, "52:54:00:00:09:01")) == 0 {
		t.Error("the host's events went with the refused delete")
	}
	wantErr(t, "DeleteHost(stranger)", s.DeleteHost("52:54:00:00:09:03"), ErrNotFound)
	if err := s.DeleteHost("52:54:00:00:09:01"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resolve("52:54:00:00:09:02"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the deleted host's other NIC still resolves: %v", err)
	}
}

func staticSite(ip string) userdata.Site {
	return userdata.Site{Network: &userdata.Network{Type: "static", IPAddress: ip, Mask: "24", Gateway: "10.1.0.1"}}
}

// Two hosts cannot share a static site address, however they get it:
// create, update, two manifest rows, a row and a stored host. The error
// names both hosts. Giving it up (delete, update, a swap inside one
// import) frees it.
func TestSiteIPUnique(t *testing.T) {
	s := openTestStore(t)
	mustProfile(t, s, "edge")
	const a, b, c = "52:54:00:00:0a:01", "52:54:00:00:0a:02", "52:54:00:00:0a:03"
	mustHost(t, s, Host{MAC: a, Name: "node-a", Profile: "edge", Site: staticSite("10.1.0.11")})
	_, err := s.CreateHost(Host{MAC: b, Name: "node-b", Profile: "edge", Site: staticSite("10.1.0.11")})
	wantErr(t, "create", err, ErrExists, "field ipAddress", "10.1.0.11", a+" (node-a)", b)

	mustHost(t, s, Host{MAC: b, Name: "node-b", Profile: "edge", Site: staticSite("10.1.0.12")})
	before := mustHosts(t, s)
	_, err = s.UpdateHost(b, func(h *Host) error { h.Site = staticSite("10.1.0.11"); return nil })
	wantErr(t, "update", err, ErrExists, "field ipAddress", a+" (node-a)", "node-b")
	unchanged(t, s, before)

	// A row and a stored host.
	_, err = s.Import(parse(t, "mac,networkType,ipAddress,mask,gateway\n"+c+",static,10.1.0.11,24,10.1.0.1\n"))
	rows := importErr(t, err)
	if len(rows) != 1 || rows[0].MAC != c || !strings.Contains(rows[0].Error(), a+" (node-a)") {
		t.Errorf("row against a stored host: %v", rows)
	}
	// Two rows.
	_, err = s.Import(parse(t, "mac,networkType,ipAddress,mask,gateway\n"+
		c+",static,10.1.0.20,24,10.1.0.1\n"+
		"52:54:00:00:0a:04,static,10.1.0.20,24,10.1.0.1\n"))
	rows = importErr(t, err)
	if len(rows) != 1 || rows[0].Field != "ipAddress" || rows[0].MAC != "52:54:00:00:0a:04" || !strings.Contains(rows[0].Reason, c) {
		t.Errorf("two rows: %v", rows)
	}
	unchanged(t, s, before)

	// A swap in one import is not a collision.
	if _, err := s.Import(parse(t, "mac,networkType,ipAddress,mask,gateway\n"+
		a+",static,10.1.0.12,24,10.1.0.1\n"+
		b+",static,10.1.0.11,24,10.1.0.1\n")); err != nil {
		t.Fatalf("swap: %v", err)
	}
	// Deleting frees the address.
	if err := s.DeleteHost(a); err != nil {
		t.Fatal(err)
	}
	mustHost(t, s, Host{MAC: c, Profile: "edge", Site: staticSite("10.1.0.12")})
}

// A store written before static addresses were indexed gets its index
// on Open, and the rule holds for the hosts it already has.
func TestSiteIPIndexBuiltOnOpen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustProfile(t, s, "edge")
	mustHost(t, s, Host{MAC: "52:54:00:00:0b:01", Profile: "edge", Site: staticSite("10.1.0.31")})
	// As an older version left it: no index, no marker.
	if err := s.eng.Update(func(tx storage.Tx) error {
		tx.Delete(storage.Collection(idxSiteIP), "10.1.0.31")
		tx.Delete(colMeta, metaSiteIPIndex)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.CreateHost(Host{MAC: "52:54:00:00:0b:02", Profile: "edge", Site: staticSite("10.1.0.31")})
	wantErr(t, "after reopen", err, ErrExists, "52:54:00:00:0b:01")
}

// One name: Host.Name is what a host renders as stylus.site.name. A
// site name may repeat it or give it; a different one is refused; the
// name stays unique however it is given.
func TestOneName(t *testing.T) {
	s := openTestStore(t)
	p := mustProfile(t, s, "edge")
	h := mustHost(t, s, Host{MAC: "52:54:00:00:0c:01", Name: "n1", Profile: "edge", Site: userdata.Site{Name: "n1"}})
	if h.Name != "n1" || h.Site.Name != "" {
		t.Errorf("same name twice: stored name %q, site name %q", h.Name, h.Site.Name)
	}
	h = mustHost(t, s, Host{MAC: "52:54:00:00:0c:02", Profile: "edge", Site: userdata.Site{Name: "n2"}})
	if h.Name != "n2" || h.Site.Name != "" {
		t.Errorf("site name only: stored name %q, site name %q", h.Name, h.Site.Name)
	}
	doc, err := userdata.Render(userdata.Input{Base: []byte(p.UserData), Site: h.Site, HostName: h.Name, CallbackURL: "http://x.invalid/callback/t"})
	if err != nil || !strings.Contains(string(doc), "name: n2") {
		t.Errorf("rendered %s (%v), want site name n2", doc, err)
	}
	before := mustHosts(t, s)
	_, err = s.CreateHost(Host{MAC: "52:54:00:00:0c:03", Name: "n3", Profile: "edge", Site: userdata.Site{Name: "other"}})
	wantErr(t, "two names", err, ErrInvalid, "52:54:00:00:0c:03", "field site.name", "other", "n3")
	_, err = s.CreateHost(Host{MAC: "52:54:00:00:0c:03", Profile: "edge", Site: userdata.Site{Name: "n1"}})
	wantErr(t, "site name of another host", err, ErrExists, "n1", "52:54:00:00:0c:01")
	_, err = s.UpdateHost("52:54:00:00:0c:01", func(h *Host) error { h.Site = userdata.Site{Name: "n9"}; return nil })
	wantErr(t, "update to another site name", err, ErrInvalid, "field site.name", "n9")
	unchanged(t, s, before)
}

// Broadcast, all-zero and multicast MACs are no NIC's: refused as a
// host's MAC and as another NIC's, naming the field.
func TestHostMACKinds(t *testing.T) {
	s := openTestStore(t)
	mustProfile(t, s, "edge")
	for _, mac := range []string{"ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00", "01:00:5e:00:00:01", "33:33:00:00:00:01"} {
		_, err := s.CreateHost(Host{MAC: mac, Profile: "edge"})
		wantErr(t, "host "+mac, err, ErrInvalid, "field mac", mac)
		_, err = s.CreateHost(Host{MAC: "52:54:00:00:0d:01", Profile: "edge", OtherMACs: []string{mac}})
		wantErr(t, "other NIC "+mac, err, ErrInvalid, "field otherMACs", mac)
		_, err = s.Discover(mac, "10.0.0.9", Facts{}, 0)
		wantErr(t, "discover "+mac, err, ErrInvalid, "field mac")
	}
	_, err := s.Import(parse(t, "mac,profile\nFF-FF-FF-FF-FF-FF,edge\n"))
	if rows := importErr(t, err); len(rows) != 1 || !strings.Contains(rows[0].Error(), "broadcast") {
		t.Errorf("import of the broadcast MAC: %v", rows)
	}
	if hs := mustHosts(t, s); len(hs) != 0 {
		t.Errorf("stored %v", hs)
	}
	// A locally administered unicast MAC (02:…) is a NIC's.
	mustHost(t, s, Host{MAC: "02:00:00:00:0d:01", Profile: "edge"})
}

// A manifest that gives a discovered host a profile moves it through the
// same transition, with the same event, as UpdateHost does; a host that
// is only discovered (no operator field) is taken over instead, with a
// takeover event (TestTakeover).
func TestImportAssignsThroughTransition(t *testing.T) {
	s := openTestStore(t)
	mustProfile(t, s, "edge")
	for _, mac := range []string{"52:54:00:00:0e:01", "52:54:00:00:0e:02"} {
		if _, err := s.Discover(mac, "10.0.0.5", Facts{}, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.UpdateHost("52:54:00:00:0e:01", func(h *Host) error { h.Profile = "edge"; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateHost("52:54:00:00:0e:02", func(h *Host) error { h.Name = "named"; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Import(parse(t, "mac,profile\n52:54:00:00:0e:02,edge\n")); err != nil {
		t.Fatal(err)
	}
	for _, mac := range []string{"52:54:00:00:0e:01", "52:54:00:00:0e:02"} {
		h, _ := s.Host(mac)
		ev := mustEvents(t, s, mac)
		var assign *Event
		for i := range ev {
			if ev[i].Kind == "assign" {
				assign = &ev[i]
			}
		}
		if h.State != StateReady || assign == nil || assign.Detail != "profile edge" {
			t.Errorf("%s: state %s, events %v; want ready with an assign event", mac, h.State, kinds(ev))
		}
	}
}

// A store written when a site name could differ from the host's name is
// brought to one name on Open: the site name fills an empty name when it
// is free, and otherwise gives way to the host's name.
func TestOneNameMigration(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustProfile(t, s, "edge")
	const a, b, c = "52:54:00:00:0c:11", "52:54:00:00:0c:12", "52:54:00:00:0c:13"
	mustHost(t, s, Host{MAC: a, Name: "taken", Profile: "edge"})
	mustHost(t, s, Host{MAC: b, Profile: "edge"})
	mustHost(t, s, Host{MAC: c, Name: "cname", Profile: "edge"})
	// As an older version could leave them.
	if err := s.eng.Update(func(tx storage.Tx) error {
		for mac, sn := range map[string]string{a: "other", b: "bname", c: "taken"} {
			h, err := get[Host](tx, colHosts, mac, "host")
			if err != nil {
				return err
			}
			h.Site.Name = sn
			if err := put(tx, colHosts, mac, h); err != nil {
				return err
			}
		}
		tx.Delete(colMeta, metaOneName)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for mac, want := range map[string]string{a: "taken", b: "bname", c: "cname"} {
		if h, _ := s.Host(mac); h.Name != want || h.Site.Name != "" {
			t.Errorf("%s: name %q, site name %q; want %q and none", mac, h.Name, h.Site.Name, want)
		}
	}
	_, err = s.CreateHost(Host{MAC: "52:54:00:00:0c:14", Name: "bname"})
	wantErr(t, "the migrated name is indexed", err, ErrExists, b)
}
