package ipxe

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
