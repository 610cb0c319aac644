//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/lab"
)

// TestUEFIHTTPBoot: UEFI HTTP boot (arch 16, option 60 "HTTPClient"),
// which firmware uses where TFTP is blocked or unwanted. OVMF tries its
// network boot options in order: PXEv4, PXEv6, HTTPv4. Here stagehand's
// TFTP listens on another port than 69, so the PXEv4 option's download
// fails and PXEv6 finds no DHCPv6 server; the firmware's HTTP boot then
// asks DHCP again as an HTTPClient, stagehand's proxy offer names
// http://S:8080/tftp/snponly.efi, the firmware downloads it over HTTP,
// and that iPXE goes on as in every other boot: stage 1, stage 2, the
// installer, user-data, completion.
func TestUEFIHTTPBoot(t *testing.T) {
	s := proxyLab(t, "httpboot", "9", "--tftp-port", "6969")
	mac, name := "52:54:00:e2:09:01", "rack1-httpboot"
	s.cli("host", "add", mac, "--profile", "lab", "--name", name)

	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	start := time.Now()
	vm := lab.StartVM(t, s.n, lab.VMOptions{Firmware: lab.UEFI, MAC: mac, Timeout: 8 * time.Minute})
	for _, p := range []struct{ name, pattern string }{
		{"HTTP boot started", `Start HTTP Boot over IPv4`},
		{"stage 2 script", `stagehand: installing`},
		{"user-data checked", `STANDIN: site\.name=` + name},
		{"callback", `STANDIN: callback ok`},
	} {
		if err := vm.WaitFor(ctx, p.pattern); err != nil {
			t.Fatalf("%s not reached after %.1fs: %v", p.name, time.Since(start).Seconds(), err)
		}
		t.Logf("%s at %.1fs", p.name, time.Since(start).Seconds())
	}
	if err := vm.Wait(ctx); err != nil {
		t.Fatalf("boot: %v", err)
	}

	h := s.host(mac)
	if h.State != "installed" || h.Attempt != 1 {
		t.Fatalf("after HTTP boot: host %s state %q attempt %d, want installed attempt 1", mac, h.State, h.Attempt)
	}
	ev := s.events(mac)
	want := "arch efi-x64-http boot http://10.99.9.1:8080/tftp/snponly.efi"
	var offered bool
	for _, e := range ev {
		if e.Kind == "dhcp" && strings.HasSuffix(e.Detail, want) {
			offered = true
		}
		if e.Kind == "tftp" {
			t.Errorf("a TFTP transfer on %s although TFTP is not on port 69: %+v", mac, e)
		}
	}
	if !offered {
		t.Fatalf("no DHCP event %q on %s; events: %+v", want, mac, ev)
	}
	for _, kind := range []string{"booting", "userdata", "installed"} {
		if countKind(ev, kind) == 0 {
			t.Errorf("no %q event recorded for %s; events: %+v", kind, mac, ev)
		}
	}
}
