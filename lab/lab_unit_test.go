package lab

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestQEMUArgs(t *testing.T) {
	base := qemuConfig{Tap: "tap1", Serial: "/t/serial.log", VarsFD: "/t/vars.fd", Timeout: 90 * time.Second}
	tests := []struct {
		name    string
		opts    VMOptions
		want    []string // consecutive arguments that must appear
		notWant []string
	}{
		{
			name: "bios network boot with ROM",
			opts: VMOptions{Firmware: BIOS, NICROM: true, MAC: "52:54:00:00:00:01"},
			want: []string{
				"timeout -k 5 90 qemu-system-x86_64",
				"-device sga",
				"-serial file:/t/serial.log",
				"-netdev tap,id=n0,ifname=tap1,script=no,downscript=no",
				"-device virtio-net-pci,netdev=n0,mac=52:54:00:00:00:01,bootindex=1",
				"-no-reboot",
			},
			notWant: []string{"romfile=", "pflash", "-kernel"},
		},
		{
			name: "uefi without ROM uses OVMF's PXE",
			opts: VMOptions{Firmware: UEFI, MAC: "52:54:00:00:00:02"},
			want: []string{
				"-drive if=pflash,format=raw,unit=0,readonly=on,file=" + OVMFCode,
				"-drive if=pflash,format=raw,unit=1,file=/t/vars.fd",
				"-device virtio-net-pci,netdev=n0,mac=52:54:00:00:00:02,romfile=,bootindex=1",
			},
			notWant: []string{"sga"},
		},
		{
			name: "direct kernel",
			opts: VMOptions{Firmware: BIOS, NIC: "e1000", MAC: "52:54:00:00:00:03", Kernel: "/k", Initrd: "/i", Append: "console=ttyS0 a=b"},
			want: []string{
				"-device e1000,netdev=n0,mac=52:54:00:00:00:03,romfile= -kernel /k -initrd /i",
				"-append console=ttyS0 a=b",
			},
			notWant: []string{"bootindex"},
		},
		{
			name: "memory and extra",
			opts: VMOptions{Firmware: BIOS, NICROM: true, MAC: "m", Memory: "1G", Extra: []string{"-smp", "2"}},
			want: []string{"-m 1G", "bootindex=1 -smp 2"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			c.Opts = tc.opts.withDefaults()
			got := strings.Join(qemuArgs(c), " ")
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("args lack %q:\n%s", w, got)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(got, w) {
					t.Errorf("args contain %q:\n%s", w, got)
				}
			}
		})
	}
}

func TestVMOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		opts VMOptions
		ok   bool
	}{
		{"bios with ROM", VMOptions{Firmware: BIOS, NICROM: true}, true},
		{"bios without ROM cannot netboot", VMOptions{Firmware: BIOS}, false},
		{"bios direct kernel without ROM", VMOptions{Firmware: BIOS, Kernel: "/k"}, true},
		{"uefi without ROM", VMOptions{Firmware: UEFI}, true},
		{"unknown firmware", VMOptions{Firmware: Firmware(7), NICROM: true}, false},
		{"initrd without kernel", VMOptions{Firmware: UEFI, Initrd: "/i"}, false},
		{"comma in MAC", VMOptions{Firmware: UEFI, MAC: "52:54:00:00:00:01,romfile=/x"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.opts.withDefaults().validate()
			if (err == nil) != tc.ok {
				t.Errorf("validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestVMOptionsDefaults(t *testing.T) {
	o := VMOptions{}.withDefaults()
	if o.NIC != "virtio-net-pci" || o.Memory != "512M" || o.Timeout != 3*time.Minute {
		t.Errorf("defaults = %+v", o)
	}
}

func TestHost(t *testing.T) {
	n := &Net{Prefix: netip.MustParsePrefix("10.99.0.0/23")}
	tests := []struct {
		i    int
		want string
	}{
		{1, "10.99.0.1"},
		{100, "10.99.0.100"},
		{256, "10.99.1.0"},
	}
	for _, tc := range tests {
		if got := n.Host(tc.i).String(); got != tc.want {
			t.Errorf("Host(%d) = %s, want %s", tc.i, got, tc.want)
		}
	}
}

func TestTail(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc"},
		{"a\nb", 5, "a\nb"},
		{"", 3, ""},
	}
	for _, tc := range tests {
		if got := Tail(tc.in, tc.n); got != tc.want {
			t.Errorf("Tail(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func TestFirmwareString(t *testing.T) {
	got := []string{BIOS.String(), UEFI.String(), Firmware(9).String()}
	if want := []string{"bios", "uefi", "Firmware(9)"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestRandomMAC(t *testing.T) {
	a, b := RandomMAC(), RandomMAC()
	if !strings.HasPrefix(a, "52:54:00:") || len(a) != 17 || a == b {
		t.Errorf("RandomMAC() = %q, %q", a, b)
	}
}

func TestUniqueName(t *testing.T) {
	a, b := uniqueName("x"), uniqueName("x")
	if !strings.HasPrefix(a, "sh-x-") || a == b {
		t.Errorf("uniqueName = %q, %q", a, b)
	}
}
