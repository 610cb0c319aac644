package ipxe

import "fmt"

// Arch is a client system architecture as sent in DHCP option 93
// (RFC 4578 §2.1, IANA "Processor Architecture Types"). The numbers are
// the wire values, so an Arch converts directly from the option.
type Arch uint16

// The architectures stagehand boots. Anything else is ArchUnknown to the
// boot policy and is ignored by the DHCP server.
const (
	ArchBIOS      Arch = 0  // x86 BIOS (legacy PXE)
	ArchEFIIA32   Arch = 6  // EFI IA32
	ArchEFI64     Arch = 7  // EFI x64 (also sent as 9 by some firmware)
	ArchEFIBC     Arch = 9  // EFI "byte code": in practice x64 firmware
	ArchARM64     Arch = 11 // EFI ARM64
	ArchEFI64HTTP Arch = 16 // x64 UEFI HTTP boot
	ArchUnknown   Arch = 0xffff
)

// Known reports whether a is one of the architectures stagehand serves.
func (a Arch) Known() bool {
	switch a {
	case ArchBIOS, ArchEFIIA32, ArchEFI64, ArchEFIBC, ArchARM64, ArchEFI64HTTP:
		return true
	}
	return false
}

// EFI reports whether a is a UEFI architecture.
func (a Arch) EFI() bool { return a.Known() && a != ArchBIOS }

func (a Arch) String() string {
	switch a {
	case ArchBIOS:
		return "bios"
	case ArchEFIIA32:
		return "efi-ia32"
	case ArchEFI64:
		return "efi-x64"
	case ArchEFIBC:
		return "efi-bc"
	case ArchARM64:
		return "efi-arm64"
	case ArchEFI64HTTP:
		return "efi-x64-http"
	}
	return fmt.Sprintf("arch-%d", uint16(a))
}
