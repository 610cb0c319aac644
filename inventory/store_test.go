package inventory

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/userdata"
)

func TestHostCRUD(t *testing.T) {
	s := openTestStore(t)
	mustProfile(t, s, "edge")
	mustProfile(t, s, "edge-big")

	h := mustHost(t, s, Host{MAC: "AA-BB-CC-00-00-01", Name: "node1", Serial: "SN1", Profile: "edge"})
	if h.MAC != "aa:bb:cc:00:00:01" || h.State != StateReady || h.Attempt != 0 || h.CreatedAt.IsZero() {
		t.Fatalf("created host = %+v", h)
	}
	mustHost(t, s, Host{MAC: "aa:bb:cc:00:00:02", Profile: "edge-big"})
	d := mustHost(t, s, Host{MAC: "aa:bb:cc:00:00:03"})
	if d.State != StateDiscovered {
		t.Fatalf("host without profile is %s, want discovered", d.State)
	}

	got, err := s.Host("aabbcc000001")
	if err != nil || got.Name != "node1" || got.Serial != "SN1" || got.Profile != "edge" {
		t.Fatalf("Host = %+v, %v", got, err)
	}
	if _, err := s.Host("aa:bb:cc:00:00:99"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Host(unknown) err = %v, want ErrNotFound", err)
	}
	if _, err := s.Host("nonsense"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Host(nonsense) err = %v, want ErrInvalid", err)
	}

	all := mustHosts(t, s)
	if len(all) != 3 || all[0].MAC != "aa:bb:cc:00:00:01" || all[2].MAC != "aa:bb:cc:00:00:03" {
		t.Fatalf("Hosts = %+v, want 3 ordered by MAC", all)
	}
	for _, tc := range []struct {
		f    Filter
		want []string
	}{
		{Filter{State: StateReady}, []string{"aa:bb:cc:00:00:01", "aa:bb:cc:00:00:02"}},
		{Filter{State: StateDiscovered}, []string{"aa:bb:cc:00:00:03"}},
		{Filter{Profile: "edge-big"}, []string{"aa:bb:cc:00:00:02"}},
		{Filter{State: StateReady, Profile: "edge"}, []string{"aa:bb:cc:00:00:01"}},
		{Filter{State: StateInstalled}, nil},
	} {
		hs, err := s.Hosts(tc.f)
		if err != nil {
			t.Fatal(err)
		}
		var macs []string
		for _, h := range hs {
			macs = append(macs, h.MAC)
		}
		if !reflect.DeepEqual(macs, tc.want) {
			t.Errorf("Hosts(%+v) = %v, want %v", tc.f, macs, tc.want)
		}
	}

	// Assigning a profile to a discovered host makes it ready; fn cannot
	// move state, attempt or token behind the flow's back.
	upd, err := s.UpdateHost("aa:bb:cc:00:00:03", func(h *Host) error {
		h.Profile = "edge"
		h.Name = "node3"
		h.State = StateInstalled
		h.Attempt = 7
		h.TokenHash = "forged"
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateHost: %v", err)
	}
	if upd.State != StateReady || upd.Attempt != 0 || upd.TokenHash != "" || upd.Name != "node3" {
		t.Fatalf("updated host = %+v", upd)
	}
	if ev := mustEvents(t, s, "aa:bb:cc:00:00:03"); !reflect.DeepEqual(kinds(ev), []string{"created", "assign"}) {
		t.Errorf("events = %v, want created, assign", kinds(ev))
	}

	// An fn error aborts the update.
	before := mustHosts(t, s)
	boom := errors.New("boom")
	if _, err := s.UpdateHost("aa:bb:cc:00:00:01", func(h *Host) error { h.Name = "renamed"; return boom }); !errors.Is(err, boom) {
		t.Fatalf("UpdateHost err = %v, want boom", err)
	}
	unchanged(t, s, before)
	if _, err := s.UpdateHost("aa:bb:cc:00:00:99", func(*Host) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("UpdateHost(unknown) err = %v", err)
	}

	if err := s.DeleteHost("AA:BB:CC:00:00:02"); err != nil {
		t.Fatalf("DeleteHost: %v", err)
	}
	if _, err := s.Host("aa:bb:cc:00:00:02"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted host still there: %v", err)
	}
	if err := s.DeleteHost("aa:bb:cc:00:00:02"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second DeleteHost err = %v, want ErrNotFound", err)
	}
	if len(mustHosts(t, s)) != 2 {
		t.Fatal("want 2 hosts after delete")
	}
}

func TestCreateHostRejects(t *testing.T) {
	s := openTestStore(t)
	mustProfile(t, s, "edge")
	mustHost(t, s, Host{MAC: "aa:bb:cc:00:00:01", Name: "node1", Profile: "edge"})
	before := mustHosts(t, s)

	tests := []struct {
		name string
		h    Host
		want error
	}{
		{"duplicate MAC in another spelling", Host{MAC: "AABBCC000001", Profile: "edge"}, ErrExists},
		{"duplicate name", Host{MAC: "aa:bb:cc:00:00:02", Name: "node1", Profile: "edge"}, ErrExists},
		{"unknown profile", Host{MAC: "aa:bb:cc:00:00:02", Profile: "nope"}, ErrInvalid},
		{"bad MAC", Host{MAC: "aa:bb", Profile: "edge"}, ErrInvalid},
		{"bad name", Host{MAC: "aa:bb:cc:00:00:02", Name: "-node", Profile: "edge"}, ErrInvalid},
		{"name with space", Host{MAC: "aa:bb:cc:00:00:02", Name: "node 2", Profile: "edge"}, ErrInvalid},
		{"serial with newline", Host{MAC: "aa:bb:cc:00:00:02", Serial: "SN\nx", Profile: "edge"}, ErrInvalid},
		{"serial too long", Host{MAC: "aa:bb:cc:00:00:02", Serial: strings.Repeat("S", maxField+1), Profile: "edge"}, ErrInvalid},
		{"user-data too big", Host{MAC: "aa:bb:cc:00:00:02", UserData: strings.Repeat("#", maxUserData+1), Profile: "edge"}, ErrInvalid},
		{"static network without address", Host{MAC: "aa:bb:cc:00:00:02", Profile: "edge", Site: userdata.Site{Network: &userdata.Network{Type: "static"}}}, ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.CreateHost(tc.h)
			if !errors.Is(err, tc.want) {
				t.Fatalf("CreateHost err = %v, want %v", err, tc.want)
			}
			unchanged(t, s, before)
		})
	}
}

func TestUpdateHostCannotClearProfile(t *testing.T) {
	s := openTestStore(t)
	mustProfile(t, s, "edge")
	mustHost(t, s, Host{MAC: "aa:bb:cc:00:00:01", Profile: "edge"})
	mustHost(t, s, Host{MAC: "aa:bb:cc:00:00:02"})
	before := mustHosts(t, s)
	// A ready host without a profile would start an attempt on its next
	// boot that cannot be served.
	_, err := s.UpdateHost("aa:bb:cc:00:00:01", func(h *Host) error { h.Profile = ""; return nil })
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "field profile") {
		t.Fatalf("clearing a ready host's profile: %v, want ErrInvalid naming the field", err)
	}
	unchanged(t, s, before)
	// A discovered host has none to clear.
	if h, err := s.UpdateHost("aa:bb:cc:00:00:02", func(h *Host) error { h.Serial = "S2"; return nil }); err != nil || h.State != StateDiscovered {
		t.Fatalf("updating a discovered host: %+v, %v", h, err)
	}
}

func TestNameUniqueness(t *testing.T) {
	s := openTestStore(t)
	mustProfile(t, s, "edge")
	mustHost(t, s, Host{MAC: "aa:bb:cc:00:00:01", Name: "alpha", Profile: "edge"})
	mustHost(t, s, Host{MAC: "aa:bb:cc:00:00:02", Name: "beta", Profile: "edge"})

	// Renaming onto a taken name fails and changes nothing.
	before := mustHosts(t, s)
	if _, err := s.UpdateHost("aa:bb:cc:00:00:02", func(h *Host) error { h.Name = "alpha"; return nil }); !errors.Is(err, ErrExists) {
		t.Fatalf("rename onto a taken name: err = %v, want ErrExists", err)
	}
	unchanged(t, s, before)

	// Keeping one's own name is not a collision.
	if _, err := s.UpdateHost("aa:bb:cc:00:00:01", func(h *Host) error { h.Serial = "S1"; return nil }); err != nil {
		t.Fatalf("update keeping the name: %v", err)
	}

	// A rename frees the old name.
	if _, err := s.UpdateHost("aa:bb:cc:00:00:01", func(h *Host) error { h.Name = "gamma"; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateHost("aa:bb:cc:00:00:02", func(h *Host) error { h.Name = "alpha"; return nil }); err != nil {
		t.Fatalf("taking a name freed by a rename: %v", err)
	}
	// Clearing a name frees it too.
	if _, err := s.UpdateHost("aa:bb:cc:00:00:01", func(h *Host) error { h.Name = ""; return nil }); err != nil {
		t.Fatal(err)
	}
	mustHost(t, s, Host{MAC: "aa:bb:cc:00:00:03", Name: "gamma", Profile: "edge"})

	// A delete frees the name.
	if _, err := s.CreateHost(Host{MAC: "aa:bb:cc:00:00:04", Name: "alpha", Profile: "edge"}); !errors.Is(err, ErrExists) {
		t.Fatalf("err = %v, want ErrExists", err)
	}
	if err := s.DeleteHost("aa:bb:cc:00:00:02"); err != nil {
		t.Fatal(err)
	}
	mustHost(t, s, Host{MAC: "aa:bb:cc:00:00:04", Name: "alpha", Profile: "edge"})
}

func TestProfiles(t *testing.T) {
	s := openTestStore(t)
	p := mustProfile(t, s, "edge")
	if p.Local != LocalBootExit || p.CreatedAt.IsZero() || !p.CreatedAt.Equal(p.UpdatedAt) {
		t.Fatalf("stored profile = %+v; want localBoot exit and timestamps", p)
	}
	// Replacing keeps CreatedAt.
	p.Cmdline = "console=tty0"
	p.Local = LocalBootSanboot
	if err := s.PutProfile(p); err != nil {
		t.Fatal(err)
	}
	p2, err := s.Profile("edge")
	if err != nil {
		t.Fatal(err)
	}
	if p2.Cmdline != "console=tty0" || p2.Local != LocalBootSanboot || !p2.CreatedAt.Equal(p.CreatedAt) || !p2.UpdatedAt.After(p.UpdatedAt) {
		t.Fatalf("replaced profile = %+v", p2)
	}
	mustProfile(t, s, "other")
	ps, err := s.Profiles()
	if err != nil || len(ps) != 2 || ps[0].Name != "edge" || ps[1].Name != "other" {
		t.Fatalf("Profiles = %+v, %v", ps, err)
	}
	if _, err := s.Profile("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Profile(nope) err = %v", err)
	}

	mustHost(t, s, Host{MAC: "aa:bb:cc:00:00:01", Profile: "edge"})
	if err := s.DeleteProfile("edge"); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "aa:bb:cc:00:00:01") {
		t.Fatalf("DeleteProfile(in use) err = %v, want ErrConflict naming the host", err)
	}
	if err := s.DeleteProfile("other"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteProfile("other"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("DeleteProfile(missing) err = %v", err)
	}
	if err := s.DeleteHost("aa:bb:cc:00:00:01"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteProfile("edge"); err != nil {
		t.Fatalf("DeleteProfile after its last host went: %v", err)
	}
}

func TestProfileValidation(t *testing.T) {
	s := openTestStore(t)
	good := mustProfile(t, s, "edge")
	dir := t.TempDir()

	tests := []struct {
		name   string
		mutate func(*Profile)
		field  string // the error must name it
	}{
		{"missing kernel file", func(p *Profile) { p.Kernel = filepath.Join(dir, "no-such-vmlinuz") }, "field kernel"},
		{"kernel is a directory", func(p *Profile) { p.Kernel = dir }, "field kernel"},
		{"empty initrd", func(p *Profile) { p.Initrd = "" }, "field initrd"},
		{"relative initrd", func(p *Profile) { p.Initrd = "boot/initrd" }, "field initrd"},
		{"relative rootfs", func(p *Profile) { p.RootFS = "rootfs.squashfs" }, "field rootfs"},
		{"bad localBoot", func(p *Profile) { p.Local = "pxe" }, "field localBoot"},
		{"bad name", func(p *Profile) { p.Name = "../edge" }, "field name"},
		{"empty name", func(p *Profile) { p.Name = "" }, "field name"},
		{"multi-line cmdline", func(p *Profile) { p.Cmdline = "a\nshell" }, "field cmdline"},
		{"base user-data not YAML", func(p *Profile) { p.UserData = "stylus: [unclosed" }, "field userdata"},
		{"base user-data wrong shape", func(p *Profile) { p.UserData = "stylus:\n  site: [1, 2]\n" }, "field userdata"},
		{"base user-data bad network", func(p *Profile) {
			p.UserData = "stylus:\n  site:\n    network:\n      type: carrier-pigeon\n"
		}, "field userdata"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			beforeP, err := s.Profiles()
			if err != nil {
				t.Fatal(err)
			}
			p := good
			p.Cmdline = "changed"
			tc.mutate(&p)
			err = s.PutProfile(p)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("PutProfile err = %v; want ErrInvalid naming %q", err, tc.field)
			}
			afterP, err := s.Profiles()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(beforeP, afterP) {
				t.Fatalf("store changed by a rejected profile:\n%+v\n%+v", beforeP, afterP)
			}
		})
	}
}

func TestEventsCappedAndDeletedWithHost(t *testing.T) {
	s := openTestStore(t)
	mustProfile(t, s, "edge")
	const mac = "aa:bb:cc:00:00:01"
	mustHost(t, s, Host{MAC: mac, Profile: "edge"})
	other := "aa:bb:cc:00:00:02"
	mustHost(t, s, Host{MAC: other, Profile: "edge"})

	// Concurrent writers share group commits; the cap holds anyway.
	const n = MaxEventsPerHost + 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := 0; w < 20; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n/20; i++ {
				if err := s.AddEvent(mac, "tftp", fmt.Sprintf("w%d-%d", w, i)); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("AddEvent: %v", err)
	}
	if err := s.AddEvent(mac, "artifact", "newest"); err != nil {
		t.Fatal(err)
	}
	// The routine events are capped; the audit event (created) is not
	// one of them, and stays.
	ev := mustEvents(t, s, mac)
	if len(ev) != MaxEventsPerHost+1 {
		t.Fatalf("%d events, want the cap %d and created", len(ev), MaxEventsPerHost)
	}
	if ev[0].Kind != "created" {
		t.Errorf("oldest event = %+v, want created, which routine events never evict", ev[0])
	}
	if ev[1].Detail == "w0-0" {
		t.Error("the oldest routine event survived the cap")
	}
	if last := ev[len(ev)-1]; last.Kind != "artifact" || last.Detail != "newest" {
		t.Errorf("last event = %+v, want the newest", last)
	}
	for i := 1; i < len(ev); i++ {
		if ev[i].Time.Before(ev[i-1].Time) {
			t.Fatalf("events not oldest first at %d", i)
		}
	}
	// The other host's history is untouched by the trimming.
	if k := kinds(mustEvents(t, s, other)); !reflect.DeepEqual(k, []string{"created"}) {
		t.Fatalf("other host's events = %v", k)
	}

	// Strangers cannot grow the file.
	if err := s.AddEvent("aa:bb:cc:00:00:99", "dhcp", "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("AddEvent(unknown) err = %v, want ErrNotFound", err)
	}

	if err := s.DeleteHost(mac); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Events(mac); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Events(deleted) err = %v", err)
	}
	// Re-creating the MAC starts a clean history.
	mustHost(t, s, Host{MAC: mac, Profile: "edge"})
	if k := kinds(mustEvents(t, s, mac)); !reflect.DeepEqual(k, []string{"created"}) {
		t.Fatalf("recreated host's events = %v, want only created", k)
	}
}

func TestLeasesSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{LockTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Date(2025, 6, 1, 9, 0, 0, 0, time.UTC)
	for _, l := range []Lease{
		{MAC: "AA-BB-CC-00-00-02", IP: "10.0.0.102", Expiry: exp, Hostname: "two"},
		{MAC: "aa:bb:cc:00:00:01", IP: "10.0.0.101", Expiry: exp},
		{MAC: "aa:bb:cc:00:00:03", IP: "10.0.0.103", Expiry: exp},
	} {
		if err := s.PutLease(l); err != nil {
			t.Fatalf("PutLease: %v", err)
		}
	}
	if err := s.PutLease(Lease{MAC: "bogus", IP: "10.0.0.9"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("PutLease(bad mac) err = %v", err)
	}
	if err := s.DeleteLease("aa:bb:cc:00:00:03"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteLease("aa:bb:cc:00:00:77"); err != nil {
		t.Fatalf("deleting a missing lease: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(dir, Options{LockTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	ls, err := s.Leases()
	if err != nil {
		t.Fatal(err)
	}
	want := []Lease{
		{MAC: "aa:bb:cc:00:00:01", IP: "10.0.0.101", Expiry: exp},
		{MAC: "aa:bb:cc:00:00:02", IP: "10.0.0.102", Expiry: exp, Hostname: "two"},
	}
	if !reflect.DeepEqual(ls, want) {
		t.Fatalf("Leases after reopen = %+v\nwant %+v", ls, want)
	}
	if s.Path() != filepath.Join(dir, DBFile) {
		t.Errorf("Path = %s", s.Path())
	}
}

func TestDeleteHostRemovesLeaseAndToken(t *testing.T) {
	s := openTestStore(t)
	mustProfile(t, s, "edge")
	const mac = "aa:bb:cc:00:00:01"
	mustHost(t, s, Host{MAC: mac, Profile: "edge"})
	if err := s.PutLease(Lease{MAC: mac, IP: "10.0.0.5"}); err != nil {
		t.Fatal(err)
	}
	_, tok, err := s.BeginInstall(mac, "10.0.0.5")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteHost(mac); err != nil {
		t.Fatal(err)
	}
	if ls, _ := s.Leases(); len(ls) != 0 {
		t.Errorf("lease survived its host: %+v", ls)
	}
	if _, _, err := s.Complete(tok); !errors.Is(err, ErrNotFound) {
		t.Errorf("token survived its host: Complete err = %v", err)
	}
}

// lockHelperEnv makes the test binary, re-executed, act as the second
// stagehand process in TestOpenLockedAcrossProcesses.
const lockHelperEnv = "STAGEHAND_TEST_LOCKED_DIR"

func TestOpenLocked(t *testing.T) {
	if dir := os.Getenv(lockHelperEnv); dir != "" {
		// Child process: try the held data dir and report what Open said.
		_, err := Open(dir, Options{LockTimeout: 100 * time.Millisecond})
		fmt.Fprintf(os.Stderr, "open error: %v\n", err)
		if errors.Is(err, ErrLocked) {
			os.Exit(3)
		}
		os.Exit(4)
	}
	dir := t.TempDir()
	first, err := Open(dir, Options{LockTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()

	start := time.Now()
	second, err := Open(dir, Options{LockTimeout: 100 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		if second != nil {
			second.Close()
		}
		t.Fatalf("second Open err = %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), filepath.Join(dir, DBFile)) {
		t.Errorf("error %q does not name the database file", err)
	}
	// Not a speed assertion: a hang (no timeout at all) would end the test run.
	t.Logf("second Open failed after %v", time.Since(start))

	// The first store is unaffected.
	if _, err := first.Profiles(); err != nil {
		t.Fatalf("first store after the failed Open: %v", err)
	}
}

func TestOpenLockedAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	cmd := helperCommand(t, os.Args[0], "-test.run=^TestOpenLocked$", "-test.count=1")
	cmd.Env = append(os.Environ(), lockHelperEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	code := cmd.ProcessState.ExitCode()
	if code != 3 {
		t.Fatalf("child exit code %d (err %v), want 3 (ErrLocked); output:\n%s", code, err, out)
	}
	for _, want := range []string{"data dir in use", "held by another stagehand process", "--data-dir"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("child's error does not say %q:\n%s", want, out)
		}
	}

	// Once the first process lets go, the child can open it.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	cmd = helperCommand(t, os.Args[0], "-test.run=^TestOpenLocked$", "-test.count=1")
	cmd.Env = append(os.Environ(), lockHelperEnv+"="+dir)
	out, _ = cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 4 || !strings.Contains(string(out), "open error: <nil>") {
		t.Fatalf("child after release: exit %d, output:\n%s", code, out)
	}
}

// helperCommand runs the test binary again; the test's context kills it
// if the test ends first.
func helperCommand(t *testing.T, bin string, args ...string) *exec.Cmd {
	t.Helper()
	return exec.CommandContext(t.Context(), bin, args...)
}
