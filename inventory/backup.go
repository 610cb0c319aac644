package inventory

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Backup writes a consistent copy of the database to a new file in dir
// and returns it open at offset 0, unlinked, so it disappears when the
// caller closes it. The copy is taken in one read transaction, while the
// server goes on writing.
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
	var n int64
	err = s.db.View(func(tx *bolt.Tx) error {
		n, err = tx.WriteTo(f)
		return err
	})
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

// VerifyBackup opens the database file at path read-only, runs bbolt's
// consistency check over every page, and counts what it holds: a backup
// that passes can replace a data dir's stagehand.db. It also serves to
// check a data dir's own database while no server holds it.
func VerifyBackup(path string) (BackupSummary, error) {
	var sum BackupSummary
	// bbolt maps the file and trusts its header: a truncated copy would
	// crash the process (SIGBUS) rather than fail, so its length is
	// checked against the header first.
	if err := checkLength(path); err != nil {
		return sum, fmt.Errorf("backup %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return sum, fmt.Errorf("backup %s: not a stagehand database: %w", path, err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		var errs []error
		for e := range tx.Check() {
			errs = append(errs, e)
		}
		if len(errs) > 0 {
			return fmt.Errorf("consistency check: %w", errors.Join(errs...))
		}
		for _, c := range []struct {
			bucket []byte
			n      *int
		}{{bucketHosts, &sum.Hosts}, {bucketProfiles, &sum.Profiles}, {bucketLeases, &sum.Leases}, {bucketEvents, &sum.Events}} {
			b := tx.Bucket(c.bucket)
			if b == nil {
				return fmt.Errorf("bucket %s missing", c.bucket)
			}
			*c.n = b.Stats().KeyN
		}
		return nil
	})
	if err != nil {
		return sum, fmt.Errorf("backup %s: %w", path, err)
	}
	return sum, nil
}

// bbolt's file header, as bbolt 1.x writes it (little-endian here): each
// of the two meta pages starts with a 16-byte page header, then magic,
// version, page size, flags, the root bucket (16 bytes), the freelist
// page, the high-water page id, the transaction id, and an FNV-64a
// checksum of the meta fields before it.
const (
	boltMagic      = 0xED0CDAED
	metaStart      = 16
	metaMagicOff   = metaStart
	metaPageSzOff  = metaStart + 8
	metaHighOff    = metaStart + 40
	metaTxidOff    = metaStart + 48
	metaSumOff     = metaStart + 56
	metaHeaderSize = metaStart + 64
)

// checkLength refuses a file shorter than the pages its current meta
// page says it holds, or with no valid meta page. Like bbolt, it trusts
// the valid meta page (magic and checksum) with the higher transaction
// id, so a torn write of the other one does not count against the file.
func checkLength(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	le := binary.LittleEndian
	// meta reads the meta page at off: its page size, high-water page id
	// and transaction id, and whether it is valid.
	meta := func(off int64) (pageSize, high, txid uint64, ok bool) {
		var h [metaHeaderSize]byte
		if _, err := f.ReadAt(h[:], off); err != nil || le.Uint32(h[metaMagicOff:]) != boltMagic {
			return 0, 0, 0, false
		}
		sum := fnv.New64a()
		sum.Write(h[metaStart:metaSumOff])
		if sum.Sum64() != le.Uint64(h[metaSumOff:]) {
			return 0, 0, 0, false
		}
		return uint64(le.Uint32(h[metaPageSzOff:])), le.Uint64(h[metaHighOff:]), le.Uint64(h[metaTxidOff:]), true
	}
	if st.Size() < metaHeaderSize {
		return fmt.Errorf("not a stagehand database: %d bytes, no bbolt header", st.Size())
	}
	pageSize, high, txid, ok := meta(0)
	if !ok {
		// The first meta page is torn or this is not bbolt: the second
		// sits one OS page in (bbolt's default page size).
		pageSize = uint64(os.Getpagesize())
	}
	if pageSize < 512 || pageSize > 1<<20 {
		return fmt.Errorf("not a stagehand database: page size %d", pageSize)
	}
	if ps2, high2, txid2, ok2 := meta(int64(pageSize)); ok2 && ps2 == pageSize && (!ok || txid2 > txid) {
		high, ok = high2, true
	}
	if !ok {
		return errors.New("not a stagehand database: no valid bbolt meta page")
	}
	if want := high * pageSize; high > 1<<40 || uint64(st.Size()) < want {
		return fmt.Errorf("truncated: %d bytes, its header says %d", st.Size(), want)
	}
	return nil
}

// Restore replaces dir's database with the backup at path, which must
// verify first. It refuses while a server holds dir's database (the
// file lock), and keeps the database it replaces as
// stagehand.db.replaced-TIMESTAMP beside it. The new file is copied in
// and synced under a temporary name, then renamed over stagehand.db, so
// a crash leaves either the old database or the new one.
func Restore(path, dir string, now time.Time) (BackupSummary, string, error) {
	sum, err := VerifyBackup(path)
	if err != nil {
		return sum, "", err
	}
	dst := filepath.Join(dir, DBFile)
	kept := ""
	if _, err := os.Stat(dst); err == nil {
		// Taking the lock proves no server is using the file; it is
		// released before the rename.
		db, err := bolt.Open(dst, 0o600, &bolt.Options{Timeout: time.Second})
		if errors.Is(err, bolt.ErrTimeout) {
			return sum, "", fmt.Errorf("%w: %s is held by a running stagehand: stop it first", ErrLocked, dst)
		}
		if err == nil {
			db.Close()
		}
		kept = dst + ".replaced-" + now.UTC().Format("20060102T150405Z")
		if err := copyFile(dst, kept); err != nil {
			return sum, "", fmt.Errorf("restore: keeping the old database: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return sum, "", fmt.Errorf("restore: %w", err)
	} else if err := os.MkdirAll(dir, 0o750); err != nil {
		return sum, "", fmt.Errorf("restore: %w", err)
	}
	tmp := dst + ".restoring"
	if err := copyFile(path, tmp); err != nil {
		os.Remove(tmp)
		return sum, "", fmt.Errorf("restore: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return sum, "", fmt.Errorf("restore: %w", err)
	}
	// The rename is durable once the directory is.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return sum, kept, nil
}

// copyFile copies src to a new file dst (mode 0600) and syncs it.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
