package boltstore

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

	"github.com/stagehand-dev/stagehand/inventory/storage"
)

// Verify opens the file at path read-only, runs bbolt's consistency
// check over every page, and returns how many records each of count
// holds; a collection missing from the file is an error.
func Verify(path string, count []storage.Collection) (map[storage.Collection]int, error) {
	// bbolt maps the file and trusts its header: a truncated copy would
	// crash the process (SIGBUS) rather than fail, so its length is
	// checked against the header first.
	if err := checkLength(path); err != nil {
		return nil, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("not a stagehand database: %w", err)
	}
	defer db.Close()
	out := map[storage.Collection]int{}
	err = db.View(func(tx *bolt.Tx) error {
		var errs []error
		for e := range tx.Check() {
			errs = append(errs, e)
		}
		if len(errs) > 0 {
			return fmt.Errorf("consistency check: %w", errors.Join(errs...))
		}
		for _, c := range count {
			b := tx.Bucket([]byte(c))
			if b == nil {
				return fmt.Errorf("bucket %s missing", c)
			}
			out[c] = b.Stats().KeyN
		}
		return nil
	})
	return out, err
}

// Replace puts the file src in place of dst (dir/name), which must not
// be held by a running server (the file lock). The file it replaces is
// kept as dst.replaced-TIMESTAMP, whose path is returned ("" when there
// was none). src is copied and synced under a temporary name, then
// renamed over dst, so a crash leaves either the old file or the new one.
func Replace(src, dst string, now time.Time) (string, error) {
	dir := filepath.Dir(dst)
	kept := ""
	if _, err := os.Stat(dst); err == nil {
		// Taking the lock proves no server is using the file; it is
		// released before the rename.
		db, err := bolt.Open(dst, 0o600, &bolt.Options{Timeout: time.Second})
		if errors.Is(err, bolt.ErrTimeout) {
			return "", fmt.Errorf("%w: %s is held by a running stagehand: stop it first", storage.ErrLocked, dst)
		}
		if err == nil {
			db.Close()
		}
		kept = dst + ".replaced-" + now.UTC().Format("20060102T150405Z")
		if err := copyFile(dst, kept); err != nil {
			return "", fmt.Errorf("keeping the old database: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	} else if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", err
	}
	tmp := dst + ".restoring"
	if err := copyFile(src, tmp); err != nil {
		os.Remove(tmp)
		return "", err
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return "", err
	}
	// The rename is durable once the directory is.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return kept, nil
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
