package inventory

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/stagehand-dev/stagehand/inventory/storage"
	"github.com/stagehand-dev/stagehand/inventory/storage/boltstore"
)

// Backup writes a consistent copy of the database to a new file in dir
// and returns it open at offset 0, unlinked, so it disappears when the
// caller closes it. The copy is the engine's snapshot of one read
// transaction, taken while the server goes on writing.
//
// It goes to a local file first, not straight to a client: a bbolt read
// transaction holds the lock a writer needs to grow the file, so a
// snapshot streamed at a slow client's pace could hold up lease commits
// (and so DHCP ACKs) for as long as the download took. Copying to disk
// takes a moment, and the download then reads the file.
func (s *Store) Backup(dir string) (*os.File, int64, error) {
	f, err := os.CreateTemp(dir, ".backup-*")
	if err != nil {
		return nil, 0, fmt.Errorf("backup: %w", err)
	}
	// Unlinked at once: nothing is left behind if we fail or crash.
	os.Remove(f.Name())
	n, err := s.eng.Snapshot(f)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("backup: %w", err)
	}
	return f, n, nil
}

// BackupSummary describes a verified database file.
type BackupSummary struct {
	Hosts    int `json:"hosts"`
	Profiles int `json:"profiles"`
	Leases   int `json:"leases"`
	Events   int `json:"events"`
}

// VerifyBackup opens the database file at path read-only, runs the
// engine's consistency check over it, and counts what it holds: a backup
// that passes can replace a data dir's stagehand.db. It also serves to
// check a data dir's own database while no server holds it.
func VerifyBackup(path string) (BackupSummary, error) {
	n, err := boltstore.Verify(path, []storage.Collection{colHosts, colProfiles, colLeases, colEvents})
	if err != nil {
		return BackupSummary{}, fmt.Errorf("backup %s: %w", path, err)
	}
	return BackupSummary{Hosts: n[colHosts], Profiles: n[colProfiles], Leases: n[colLeases], Events: n[colEvents]}, nil
}

// Restore replaces dir's database with the backup at path, which must
// verify first. It refuses while a server holds dir's database (the
// file lock), and keeps the database it replaces as
// stagehand.db.replaced-TIMESTAMP beside it; a crash leaves either the
// old database or the new one.
func Restore(path, dir string, now time.Time) (BackupSummary, string, error) {
	sum, err := VerifyBackup(path)
	if err != nil {
		return sum, "", err
	}
	kept, err := boltstore.Replace(path, filepath.Join(dir, DBFile), now)
	if err != nil {
		return sum, "", fmt.Errorf("restore: %w", err)
	}
	return sum, kept, nil
}
