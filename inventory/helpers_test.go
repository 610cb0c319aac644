package inventory

import (
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// fakeClock advances one second per reading, so every event and
// timestamp is distinct and the tests never depend on the wall clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

// openTestStore opens a store in a fresh t.TempDir and closes it at the
// end of the test.
func openTestStore(t testing.TB) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), Options{
		Log:         zerolog.New(zerolog.NewTestWriter(t)),
		Now:         (&fakeClock{t: time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC)}).now,
		LockTimeout: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// artifact writes a small file standing in for a kernel or initrd.
func artifact(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte("not really "+name), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const testBaseUserData = `#cloud-config
stylus:
  site:
    paletteEndpoint: api.spectrocloud.example
install:
  reboot: false
`

func testProfile(t testing.TB, name string) Profile {
	t.Helper()
	return Profile{
		Name:     name,
		Kernel:   artifact(t, "vmlinuz"),
		Initrd:   artifact(t, "initrd"),
		Cmdline:  "console=ttyS0 ${config_url}",
		UserData: testBaseUserData,
	}
}

// mustProfile stores a valid profile named name.
func mustProfile(t *testing.T, s *Store, name string) Profile {
	t.Helper()
	p := testProfile(t, name)
	if err := s.PutProfile(p); err != nil {
		t.Fatalf("PutProfile(%s): %v", name, err)
	}
	got, err := s.Profile(name)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func mustHost(t *testing.T, s *Store, h Host) Host {
	t.Helper()
	got, err := s.CreateHost(h)
	if err != nil {
		t.Fatalf("CreateHost(%s): %v", h.MAC, err)
	}
	return got
}

func mustHosts(t *testing.T, s *Store) []Host {
	t.Helper()
	hs, err := s.Hosts(Filter{})
	if err != nil {
		t.Fatal(err)
	}
	return hs
}

func mustEvents(t *testing.T, s *Store, mac string) []Event {
	t.Helper()
	ev, err := s.Events(mac)
	if err != nil {
		t.Fatalf("Events(%s): %v", mac, err)
	}
	return ev
}

func kinds(ev []Event) []string {
	out := make([]string, len(ev))
	for i, e := range ev {
		out[i] = e.Kind
	}
	return out
}

// unchanged fails the test when the store's hosts differ from before.
func unchanged(t *testing.T, s *Store, before []Host) {
	t.Helper()
	if after := mustHosts(t, s); !reflect.DeepEqual(before, after) {
		t.Errorf("store changed:\nbefore %+v\nafter  %+v", before, after)
	}
}
