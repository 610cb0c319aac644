package lab

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Firmware selects the VM's platform firmware.
type Firmware int

const (
	// BIOS is SeaBIOS; network boot goes through the NIC's iPXE option ROM.
	BIOS Firmware = iota
	// UEFI is OVMF (x64, 4 MiB flash).
	UEFI
)

func (f Firmware) String() string {
	switch f {
	case BIOS:
		return "bios"
	case UEFI:
		return "uefi"
	}
	return fmt.Sprintf("Firmware(%d)", int(f))
}

// Firmware and tool paths from Debian's ovmf and qemu-system-x86 packages.
const (
	OVMFCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	OVMFVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
	QEMU     = "qemu-system-x86_64"
)

// VMOptions configures StartVM. The zero value is a BIOS VM with a
// virtio NIC without option ROM, which cannot network-boot: set NICROM or
// Kernel.
type VMOptions struct {
	Firmware Firmware
	// MAC of the NIC; default a random 52:54:00:xx:xx:xx.
	MAC string
	// NICROM keeps QEMU's NIC option ROM (iPXE, from ipxe-qemu). Without it
	// (romfile=) only OVMF's own PXE client can boot from the network,
	// which is how the firmware-PXE → TFTP path is exercised on UEFI.
	NICROM bool
	// NIC is the QEMU NIC model: "virtio-net-pci" (default) or "e1000".
	NIC string
	// Memory for -m; default "512M" (the Debian kernel plus the stand-in
	// need about 256M).
	Memory string
	// Timeout bounds QEMU's run (coreutils timeout); default 3 minutes.
	Timeout time.Duration
	// Kernel, Initrd and Append boot a kernel directly (-kernel) instead of
	// from the network.
	Kernel, Initrd, Append string
	// Extra QEMU arguments, appended last.
	Extra []string
}

// qemuConfig is everything qemuArgs needs besides the options: the
// per-VM files and the tap.
type qemuConfig struct {
	Opts    VMOptions
	Tap     string
	Serial  string // serial console log file
	VarsFD  string // per-VM copy of OVMF_VARS (UEFI only)
	Timeout time.Duration
}

func (o VMOptions) withDefaults() VMOptions {
	if o.NIC == "" {
		o.NIC = "virtio-net-pci"
	}
	if o.Memory == "" {
		o.Memory = "512M"
	}
	if o.Timeout <= 0 {
		o.Timeout = 3 * time.Minute
	}
	return o
}

func (o VMOptions) validate() error {
	switch o.Firmware {
	case BIOS, UEFI:
	default:
		return fmt.Errorf("unknown firmware %v", o.Firmware)
	}
	if o.Kernel == "" && o.Firmware == BIOS && !o.NICROM {
		return errors.New("a BIOS VM boots from the network only through the NIC ROM: set NICROM or Kernel")
	}
	if o.Kernel == "" && (o.Initrd != "" || o.Append != "") {
		return errors.New("Initrd and Append need Kernel")
	}
	for _, s := range []string{o.MAC, o.NIC, o.Memory} {
		// These land inside one comma-separated -device/-netdev argument.
		if strings.ContainsAny(s, ", \t\n") {
			return fmt.Errorf("bad option value %q", s)
		}
	}
	return nil
}

// qemuArgs returns the command line (after "ip netns exec NS") for one VM.
func qemuArgs(c qemuConfig) []string {
	o := c.Opts
	secs := int((c.Timeout + time.Second - 1) / time.Second)
	args := []string{
		// timeout, not a context: a signal to it still reaches QEMU, and
		// -k makes sure a wedged QEMU dies (docs/LAB.md pitfall 7).
		"timeout", "-k", "5", fmt.Sprint(secs),
		QEMU,
		"-nodefaults",
		"-machine", "pc",
		"-accel", "tcg",
		"-smp", "1",
		"-m", o.Memory,
		"-display", "none",
		"-monitor", "none",
		"-serial", "file:" + c.Serial,
		// With panic=-1 on the kernel line, a failed boot ends QEMU rather
		// than looping (docs/LAB.md pitfall 5).
		"-no-reboot",
	}
	switch o.Firmware {
	case BIOS:
		// SeaBIOS and BIOS iPXE print to VGA only; sga copies that text to
		// the serial console (docs/LAB.md pitfall 6).
		args = append(args, "-device", "sga")
	case UEFI:
		args = append(args,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+OVMFCode,
			"-drive", "if=pflash,format=raw,unit=1,file="+c.VarsFD,
		)
	}
	args = append(args, "-netdev", "tap,id=n0,ifname="+c.Tap+",script=no,downscript=no")
	dev := o.NIC + ",netdev=n0,mac=" + o.MAC
	if !o.NICROM {
		dev += ",romfile="
	}
	if o.Kernel != "" {
		args = append(args, "-device", dev, "-kernel", o.Kernel)
		if o.Initrd != "" {
			args = append(args, "-initrd", o.Initrd)
		}
		if o.Append != "" {
			args = append(args, "-append", o.Append)
		}
	} else {
		// bootindex rather than -boot n: OVMF honours only bootindex.
		args = append(args, "-device", dev+",bootindex=1")
	}
	return append(args, o.Extra...)
}
