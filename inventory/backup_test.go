package inventory

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A backup taken while events are being written is a consistent
// database: it passes bbolt's check, opens as a store, and holds every
// host and every event committed before it began; the temporary copy
// leaves nothing in the directory. The writer is paced by the rounds
// (each round asks for a burst and takes its backup while the burst is
// being written), so no loop waits on the clock, and the writer's total
// stays below the per-host cap, so event counts are exact.
func TestBackupUnderWrites(t *testing.T) {
	s := openTestStore(t)
	if err := s.PutProfile(testProfile(t, "edge")); err != nil {
		t.Fatal(err)
	}
	const hosts, rounds, burst = 50, 5, 40
	for i := range hosts {
		mustHost(t, s, Host{MAC: fmt.Sprintf("aa:bb:cc:00:01:%02x", i), Name: fmt.Sprintf("n%d", i), Profile: "edge"})
	}
	if rounds*burst/hosts+1 >= MaxEventsPerHost {
		t.Fatal("the test would hit the per-host event cap")
	}
	bursts := make(chan int)
	written := make(chan error)
	go func() {
		defer close(written)
		for round := range bursts {
			var err error
			for i := range burst {
				if err = s.AddEvent(fmt.Sprintf("aa:bb:cc:00:01:%02x", (round*burst+i)%hosts), "dhcp", fmt.Sprintf("%d-%d ", round, i)+strings.Repeat("x", 200)); err != nil {
					break
				}
			}
			written <- err
		}
	}()
	dir := t.TempDir()
	committed := hosts // one "created" event each
	for round := range rounds {
		bursts <- round // the burst runs while the backup is taken
		f, n, err := s.Backup(dir)
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), DBFile)
		dst, err := os.Create(out)
		if err != nil {
			t.Fatal(err)
		}
		copied, err := io.Copy(dst, f)
		f.Close()
		dst.Close()
		if err != nil || copied != n {
			t.Fatalf("round %d: copied %d of %d bytes: %v", round, copied, n, err)
		}
		if err := <-written; err != nil {
			t.Fatalf("round %d: writer: %v", round, err)
		}
		sum, err := VerifyBackup(out)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if sum.Hosts != hosts || sum.Profiles != 1 || sum.Events < committed || sum.Events > committed+burst {
			t.Fatalf("round %d: backup holds %+v, want %d hosts, 1 profile and %d to %d events", round, sum, hosts, committed, committed+burst)
		}
		committed += burst
		// And it is a data dir a server could start on.
		b, err := Open(filepath.Dir(out), Options{})
		if err != nil {
			t.Fatalf("round %d: open the backup as a store: %v", round, err)
		}
		if hs, err := b.Hosts(Filter{}); err != nil || len(hs) != hosts {
			t.Errorf("round %d: restored store has %d hosts, %v", round, len(hs), err)
		}
		b.Close()
	}
	close(bursts)
	if _, open := <-written; open {
		t.Fatal("writer did not stop")
	}
	// A backup after the writes holds every one of them.
	f, _, err := s.Backup(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), DBFile)
	dst, _ := os.Create(out)
	io.Copy(dst, f)
	f.Close()
	dst.Close()
	if sum, err := VerifyBackup(out); err != nil || sum.Events != committed {
		t.Fatalf("final backup: %+v, %v; want %d events", sum, err, committed)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("backup left %d files behind", len(ents))
	}
}

// metaStart is where a bbolt meta page's fields start, after its page
// header (see storage/boltstore/file.go).
const metaStart = 16

// A file that is not a database, or a truncated one, fails verification
// with the path in the error.
func TestVerifyBackupRejects(t *testing.T) {
	s := openTestStore(t)
	f, n, err := s.Backup(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	whole, _ := io.ReadAll(f)
	f.Close()
	if int64(len(whole)) != n {
		t.Fatalf("read %d of %d bytes", len(whole), n)
	}
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		b    []byte
		want string
	}{
		"text":      {[]byte(strings.Repeat("mac,name\naa:bb:cc:dd:ee:ff,x\n", 10)), "no valid bbolt meta page"},
		"short":     {[]byte("mac,name\n"), "no bbolt header"},
		"truncated": {whole[:len(whole)/2], "truncated"},
		"one page":  {whole[:4096], "truncated"},
		"empty":     {nil, "no bbolt header"},
	} {
		p := filepath.Join(dir, name+".db")
		os.WriteFile(p, tc.b, 0o600)
		if _, err := VerifyBackup(p); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: VerifyBackup = %v, want an error naming the file and saying %q", name, err, tc.want)
		}
	}
	// A torn first meta page is survivable, as bbolt survives it: the
	// second one is used. Both torn is not a database.
	torn := append([]byte(nil), whole...)
	torn[metaStart+4] ^= 0xff // meta 0's version: its checksum fails
	p := filepath.Join(dir, "torn.db")
	os.WriteFile(p, torn, 0o600)
	if _, err := VerifyBackup(p); err != nil {
		t.Errorf("first meta page torn: %v, want the second one used", err)
	}
	torn[os.Getpagesize()+metaStart+4] ^= 0xff
	os.WriteFile(p, torn, 0o600)
	if _, err := VerifyBackup(p); err == nil || !strings.Contains(err.Error(), "no valid bbolt meta page") {
		t.Errorf("both meta pages torn: %v", err)
	}
}

// Restore puts a backup in place of a data dir's database, keeping the
// old one; it refuses while a store holds the database, and refuses a
// file that does not verify, changing nothing either way.
func TestRestore(t *testing.T) {
	src := openTestStore(t)
	if err := src.PutProfile(testProfile(t, "edge")); err != nil {
		t.Fatal(err)
	}
	mustHost(t, src, Host{MAC: "aa:bb:cc:00:02:01", Name: "from-backup", Profile: "edge"})
	f, _, err := src.Backup(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), "inv.db")
	b, _ := io.ReadAll(f)
	f.Close()
	os.WriteFile(backup, b, 0o600)

	dir := t.TempDir()
	old, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.CreateHost(Host{MAC: "aa:bb:cc:00:02:99", Name: "old"}); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 24, 6, 0, 0, 0, time.UTC)
	if _, _, err := Restore(backup, dir, now); !errors.Is(err, ErrLocked) {
		t.Fatalf("restore under a running store: %v, want ErrLocked", err)
	}
	old.Close()
	bogus := filepath.Join(t.TempDir(), "bogus.db")
	os.WriteFile(bogus, b[:len(b)/2], 0o600)
	if _, _, err := Restore(bogus, dir, now); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("restore of a truncated file: %v", err)
	}
	if sum, err := VerifyBackup(filepath.Join(dir, DBFile)); err != nil || sum.Hosts != 1 {
		t.Fatalf("after refused restores the database holds %+v, %v; want the old host", sum, err)
	}

	sum, kept, err := Restore(backup, dir, now)
	if err != nil || sum.Hosts != 1 || kept != filepath.Join(dir, DBFile+".replaced-20261124T060000Z") {
		t.Fatalf("restore: %+v, %q, %v", sum, kept, err)
	}
	st, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	hs, _ := st.Hosts(Filter{})
	st.Close()
	if len(hs) != 1 || hs[0].Name != "from-backup" {
		t.Errorf("restored hosts %+v", hs)
	}
	// The replaced database is kept whole.
	keptDir := t.TempDir()
	os.Rename(kept, filepath.Join(keptDir, DBFile))
	if ks, err := Open(keptDir, Options{}); err != nil {
		t.Fatal(err)
	} else if h, err := ks.Host("aa:bb:cc:00:02:99"); err != nil || h.Name != "old" {
		t.Errorf("kept database: %+v, %v", h, err)
	} else {
		ks.Close()
	}
	// Into a data dir that has no database yet: nothing to keep.
	fresh := filepath.Join(t.TempDir(), "new")
	if _, kept, err := Restore(backup, fresh, now); err != nil || kept != "" {
		t.Errorf("restore into a new dir: %q, %v", kept, err)
	}
}

// A truncated database in a data dir is an error naming the file, not a
// SIGBUS when bbolt maps it.
func TestOpenTruncatedDatabase(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateHost(Host{MAC: "aa:bb:cc:00:03:01"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	p := filepath.Join(dir, DBFile)
	b, _ := os.ReadFile(p)
	os.WriteFile(p, b[:len(b)/2], 0o600)
	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("Open of a truncated database: %v", err)
	}
}
