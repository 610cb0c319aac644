package ipxe

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Binary names in Debian's ipxe package (/usr/lib/ipxe).
const (
	FileBIOS       = "undionly.kpxe" // chains through the ROM's UNDI driver: works on any BIOS NIC
	FileEFISNPOnly = "snponly.efi"   // uses the firmware's own network stack: smallest, ~5 s faster to boot
	FileEFIFull    = "ipxe.efi"      // carries iPXE's own NIC drivers
	DefaultDir     = "/usr/lib/ipxe"
	debianPackage  = "ipxe"
)

// CheckBinaries reports, as one error line per missing file, which of the
// named binaries dir lacks and where to get them.
func CheckBinaries(dir string, files ...string) error {
	var errs []error
	for _, f := range files {
		p := filepath.Join(dir, f)
		st, err := os.Stat(p)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("iPXE binary %s is missing: install the Debian package %q (apt-get install %s) or point --ipxe-dir at a directory that has it", p, debianPackage, debianPackage))
		case !st.Mode().IsRegular():
			errs = append(errs, fmt.Errorf("iPXE binary %s is not a regular file", p))
		}
	}
	return errors.Join(errs...)
}

// Binaries is the set of iPXE binaries served over TFTP and HTTP: every
// regular file directly in the directory, resolved once at start. Debian
// ships ipxe.efi as a symlink to /boot/ipxe.efi, so a handler that refused
// symlinks out of the directory would refuse it; resolving the operator's
// own directory listing up front serves it without ever letting a client
// path name a file outside that list.
type Binaries map[string]string // name → resolved path

// LoadBinaries lists dir.
func LoadBinaries(dir string) (Binaries, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("iPXE directory: %w", err)
	}
	b := Binaries{}
	for _, e := range ents {
		p, err := filepath.EvalSymlinks(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			b[e.Name()] = p
		}
	}
	return b, nil
}

// Open opens a binary by its plain name; anything else is fs.ErrNotExist.
func (b Binaries) Open(name string) (*os.File, error) {
	p, ok := b[strings.TrimPrefix(name, "/")]
	if !ok {
		return nil, fmt.Errorf("%q: %w", name, fs.ErrNotExist)
	}
	return os.Open(p)
}
