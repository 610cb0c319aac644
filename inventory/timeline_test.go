package inventory

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// t0 is when each test's first event happens.
var t0 = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

// ev is one event ms milliseconds after t0, as the store records it.
func ev(ms int, kind string, attempt int, detail string) Event {
	return Event{Time: t0.Add(time.Duration(ms) * time.Millisecond), Kind: kind, Attempt: attempt, Detail: detail}
}

// Event details as the server writes them (server/adapters.go, api).
const (
	fwOffer     = "full OFFER 10.0.0.100 client firmware-pxe arch efi-x64 boot snponly.efi"
	fwAck       = "full ACK 10.0.0.100 client firmware-pxe arch efi-x64 boot snponly.efi"
	ipxeOffer   = "full OFFER 10.0.0.100 client ipxe arch efi-x64 boot http://10.0.0.1:8080/boot.ipxe"
	ipxeAck     = "full ACK 10.0.0.100 client ipxe arch efi-x64 boot http://10.0.0.1:8080/boot.ipxe"
	osAck       = "full ACK 10.0.0.100, no boot file (not a PXE client)"
	proxyOffer  = "proxy OFFER client firmware-pxe arch efi-x64 boot snponly.efi"
	proxyAck    = "proxy ACK port 4011 client firmware-pxe arch efi-x64 boot snponly.efi"
	proxyIOffer = "proxy OFFER client ipxe arch efi-x64 boot http://10.0.0.1:8080/boot.ipxe"
	proxyIAck   = "proxy ACK port 4011 client ipxe arch efi-x64 boot http://10.0.0.1:8080/boot.ipxe"
	httpOffer   = "full OFFER 10.0.0.100 client firmware-http arch efi-x64-http boot http://10.0.0.1:8080/tftp/snponly.efi"
	httpAck     = "full ACK 10.0.0.100 client firmware-http arch efi-x64-http boot http://10.0.0.1:8080/tftp/snponly.efi"
	stage1      = Stage1Detail + " to 10.0.0.100"
)

// install is what follows stage 1 of a boot of attempt n, from ms on:
// stage 2, kernel, initrd, the installer's DHCP, rootfs, user-data and
// the callback (kind installed or failed).
func install(ms, n int, verdict string) []Event {
	return []Event{
		ev(ms, "script", n-1, "stage 2 requested, ip 10.0.0.100"),
		ev(ms+10, "booting", n, "install script served to 10.0.0.100, new attempt"),
		ev(ms+400, "artifact", n, "p/kernel"),
		ev(ms+900, "artifact", n, "p/initrd"),
		ev(ms+3000, "dhcp", n, osAck),
		ev(ms+5000, "artifact", n, "p/rootfs"),
		ev(ms+8000, "userdata", n, "user-data served to 10.0.0.100"),
		ev(ms+20000, verdict, n, "installer reported"),
	}
}

// phase is one expected phase: its name, start and end in ms after t0.
type phase struct {
	p          Phase
	start, end int
}

func seq(parts ...[]Event) []Event {
	var out []Event
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// tail is the phases of install(ms, …) after a stage 1 that ended at s1.
func tail(s1, ms int) []phase {
	return []phase{{PhaseStage2, s1, ms + 10}, {PhaseKernel, ms + 10, ms + 400}, {PhaseInitrd, ms + 400, ms + 900},
		{PhaseRootFS, ms + 900, ms + 5000}, {PhaseUserData, ms + 5000, ms + 8000}, {PhaseDone, ms + 8000, ms + 20000}}
}

func TestTimeline(t *testing.T) {
	type want struct {
		attempt int
		outcome string
		phases  []phase
	}
	for _, tc := range []struct {
		name   string
		events []Event
		want   []want
	}{{
		name: "iPXE NIC ROM, full DHCP: no firmware phases",
		events: seq([]Event{
			ev(-60000, "created", 0, "manifest"), ev(-50000, "assign", 0, "profile p"),
			ev(0, "dhcp", 0, ipxeOffer), ev(40, "dhcp", 0, ipxeAck), ev(90, "script", 0, stage1),
		}, install(100, 1, "installed")),
		want: []want{{1, OutcomeInstalled, append([]phase{{PhaseIPXEDHCP, 0, 40}, {PhaseStage1, 40, 90}}, tail(90, 100)...)}},
	}, {
		name: "OVMF PXE, TFTP snponly.efi (a tsize probe first), then iPXE, full DHCP",
		events: seq([]Event{
			ev(0, "dhcp", 0, fwOffer), ev(1000, "dhcp", 0, fwAck),
			ev(1100, "tftp", 0, "snponly.efi 0 bytes failed: client aborted: tsize probe"),
			ev(1500, "tftp", 0, "snponly.efi 1048576 bytes"),
			ev(2500, "dhcp", 0, ipxeOffer), ev(3500, "dhcp", 0, ipxeAck), ev(3540, "script", 0, stage1),
		}, install(3550, 1, "installed")),
		want: []want{{1, OutcomeInstalled, append([]phase{{PhaseFirmwareDHCP, 0, 1000}, {PhaseBootFile, 1000, 1500},
			{PhaseIPXEDHCP, 1500, 3500}, {PhaseStage1, 3500, 3540}}, tail(3540, 3550)...)}},
	}, {
		name: "OVMF PXE behind a site server: proxy OFFER, 4011 ACK; iPXE hears a proxy OFFER and a 4011 ACK",
		events: seq([]Event{
			ev(0, "dhcp", 0, proxyOffer), ev(1200, "dhcp", 0, proxyAck), ev(1300, "tftp", 0, "snponly.efi 1048576 bytes"),
			ev(2000, "dhcp", 0, proxyIOffer), ev(2100, "dhcp", 0, proxyIAck), ev(2150, "script", 0, stage1),
		}, install(2200, 1, "installed")),
		want: []want{{1, OutcomeInstalled, append([]phase{{PhaseFirmwareDHCP, 0, 1200}, {PhaseBootFile, 1200, 1300},
			{PhaseIPXEDHCP, 1300, 2100}, {PhaseStage1, 2100, 2150}}, tail(2150, 2200)...)}},
	}, {
		name: "proxy: iPXE takes its address from the site server and hears only our OFFER",
		events: seq([]Event{
			ev(0, "dhcp", 0, proxyOffer), ev(1200, "dhcp", 0, proxyAck), ev(1300, "tftp", 0, "snponly.efi 1048576 bytes"),
			ev(2000, "dhcp", 0, proxyIOffer), ev(2150, "script", 0, stage1),
		}, install(2200, 1, "installed")),
		want: []want{{1, OutcomeInstalled, append([]phase{{PhaseFirmwareDHCP, 0, 1200}, {PhaseBootFile, 1200, 1300},
			{PhaseIPXEDHCP, 1300, 2000}, {PhaseStage1, 2000, 2150}}, tail(2150, 2200)...)}},
	}, {
		name: "UEFI HTTP boot: the boot file over HTTP",
		events: seq([]Event{
			ev(0, "dhcp", 0, httpOffer), ev(800, "dhcp", 0, httpAck),
			ev(900, BootFileKind, 0, "snponly.efi 1048576 bytes over HTTP"),
			ev(1500, "dhcp", 0, ipxeOffer), ev(1600, "dhcp", 0, ipxeAck), ev(1650, "script", 0, stage1),
		}, install(1700, 1, "installed")),
		want: []want{{1, OutcomeInstalled, append([]phase{{PhaseFirmwareDHCP, 0, 800}, {PhaseBootFile, 800, 900},
			{PhaseIPXEDHCP, 900, 1600}, {PhaseStage1, 1600, 1650}}, tail(1650, 1700)...)}},
	}, {
		name: "a failed attempt",
		events: seq([]Event{
			ev(0, "dhcp", 0, ipxeOffer), ev(40, "dhcp", 0, ipxeAck), ev(90, "script", 0, stage1),
		}, install(100, 1, "failed")),
		want: []want{{1, OutcomeFailed, append([]phase{{PhaseIPXEDHCP, 0, 40}, {PhaseStage1, 40, 90}}, tail(90, 100)...)}},
	}, {
		name: "a reinstall: attempt 1, a local boot (left out), reprovision, attempt 2 whose first events carry 1",
		events: seq([]Event{
			ev(0, "dhcp", 0, ipxeOffer), ev(40, "dhcp", 0, ipxeAck), ev(90, "script", 0, stage1),
		}, install(100, 1, "installed"), []Event{
			ev(60000, "dhcp", 1, ipxeOffer), ev(60040, "dhcp", 1, ipxeAck), ev(60090, "script", 1, stage1),
			ev(60100, "localboot", 1, "stage 2 requested: booting local disk (exit), host is installed"),
			ev(70000, "reprovision", 1, "from installed"),
			ev(80000, "dhcp", 1, ipxeOffer), ev(80050, "dhcp", 1, ipxeAck), ev(80100, "script", 1, stage1),
		}, install(80200, 2, "installed")),
		want: []want{
			{1, OutcomeInstalled, append([]phase{{PhaseIPXEDHCP, 0, 40}, {PhaseStage1, 40, 90}}, tail(90, 100)...)},
			{2, OutcomeInstalled, append([]phase{{PhaseIPXEDHCP, 80000, 80050}, {PhaseStage1, 80050, 80100}}, tail(80100, 80200)...)},
		},
	}, {
		name: "retransmitted DHCP: a second exchange before TFTP; the phase ends at the last ACK",
		events: seq([]Event{
			ev(0, "dhcp", 0, fwOffer), ev(4000, "dhcp", 0, fwOffer), ev(4100, "dhcp", 0, fwAck), ev(8100, "dhcp", 0, fwAck),
			ev(8200, "tftp", 0, "snponly.efi 1048576 bytes"),
			ev(9000, "dhcp", 0, ipxeOffer), ev(9100, "dhcp", 0, ipxeAck), ev(9150, "script", 0, stage1),
		}, install(9200, 1, "installed")),
		want: []want{{1, OutcomeInstalled, append([]phase{{PhaseFirmwareDHCP, 0, 8100}, {PhaseBootFile, 8100, 8200},
			{PhaseIPXEDHCP, 8200, 9100}, {PhaseStage1, 9100, 9150}}, tail(9150, 9200)...)}},
	}, {
		name: "missing phases: no DHCP recorded (budget spent), no root image; still in progress",
		events: []Event{
			ev(0, "script", 0, stage1), ev(50, "booting", 1, "install script served, new attempt"),
			ev(400, "artifact", 1, "p/kernel"), ev(900, "artifact", 1, "p/initrd"), ev(8000, "userdata", 1, "user-data served"),
		},
		want: []want{{1, OutcomeInProgress, []phase{{PhaseStage1, 0, 0}, {PhaseStage2, 0, 50}, {PhaseKernel, 50, 400},
			{PhaseInitrd, 400, 900}, {PhaseUserData, 900, 8000}}}},
	}, {
		name: "a reset mid-install: the firmware boots again; the first boot was interrupted, the same attempt goes on",
		events: seq([]Event{
			ev(0, "dhcp", 0, fwOffer), ev(1000, "dhcp", 0, fwAck), ev(1500, "tftp", 0, "snponly.efi 1048576 bytes"),
			ev(3500, "dhcp", 0, ipxeAck), ev(3540, "script", 0, stage1),
			ev(3550, "booting", 1, "install script served, new attempt"), ev(3950, "artifact", 1, "p/kernel"),
			ev(30000, "dhcp", 1, fwOffer), ev(31000, "dhcp", 1, fwAck), ev(31500, "tftp", 1, "snponly.efi 1048576 bytes"),
			ev(33500, "dhcp", 1, ipxeAck), ev(33540, "script", 1, stage1),
		}, install(33550, 1, "installed")[1:]),
		want: []want{
			{1, OutcomeInterrupted, []phase{{PhaseFirmwareDHCP, 0, 1000}, {PhaseBootFile, 1000, 1500},
				{PhaseIPXEDHCP, 1500, 3500}, {PhaseStage1, 3500, 3540}, {PhaseStage2, 3540, 3550}, {PhaseKernel, 3550, 3950}}},
			{1, OutcomeInstalled, append([]phase{{PhaseFirmwareDHCP, 30000, 31000}, {PhaseBootFile, 31000, 31500},
				{PhaseIPXEDHCP, 31500, 33500}, {PhaseStage1, 33500, 33540}}, tail(33540, 33550)...)},
		},
	}, {
		name: "a firmware that gets no boot file goes quiet and retries much later: two boots",
		events: []Event{
			ev(0, "dhcp", 0, fwOffer),
			ev(int(attemptGap/time.Millisecond)+1000, "dhcp", 0, fwOffer), ev(int(attemptGap/time.Millisecond)+2000, "dhcp", 0, fwAck),
		},
		want: []want{
			{0, OutcomeInterrupted, []phase{{PhaseFirmwareDHCP, 0, 0}}},
			{0, OutcomeInProgress, []phase{{PhaseFirmwareDHCP, int(attemptGap/time.Millisecond) + 1000, int(attemptGap/time.Millisecond) + 2000}}},
		},
	}, {
		name:   "no boot at all: operator events only",
		events: []Event{ev(0, "created", 0, "manifest"), ev(10, "dhcp", 0, osAck), ev(20, "reprovision", 0, "from failed")},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got := Timeline(tc.events)
			if len(got) != len(tc.want) {
				t.Fatalf("%d attempts, want %d: %s", len(got), len(tc.want), dumpTimeline(got))
			}
			for i, w := range tc.want {
				a := got[i]
				if a.Attempt != w.attempt || a.Outcome != w.outcome {
					t.Errorf("attempt %d: number %d outcome %q, want %d %q", i, a.Attempt, a.Outcome, w.attempt, w.outcome)
				}
				var ps []phase
				for _, p := range a.Phases {
					ps = append(ps, phase{p.Phase, ms(p.Start), ms(p.End)})
					if want := seconds(p.End.Sub(p.Start)); p.Seconds != want || p.Seconds < 0 {
						t.Errorf("attempt %d %s: %v s, want %v", i, p.Phase, p.Seconds, want)
					}
				}
				if !reflect.DeepEqual(ps, w.phases) {
					t.Errorf("attempt %d phases\n got %v\nwant %v", i, ps, w.phases)
				}
				if len(w.phases) > 0 && (ms(a.Start) != w.phases[0].start || ms(a.End) != w.phases[len(w.phases)-1].end) {
					t.Errorf("attempt %d spans %d–%d ms, want %d–%d", i, ms(a.Start), ms(a.End), w.phases[0].start, w.phases[len(w.phases)-1].end)
				}
			}
		})
	}
}

// TestTimelineOrderAndInput: events given newest first (or out of
// commit order) give the same timeline, and the input is not changed.
func TestTimelineOrderAndInput(t *testing.T) {
	evs := seq([]Event{ev(0, "dhcp", 0, ipxeOffer), ev(40, "dhcp", 0, ipxeAck), ev(90, "script", 0, stage1)}, install(100, 1, "installed"))
	want := Timeline(evs)
	rev := make([]Event, len(evs))
	for i, e := range evs {
		rev[len(evs)-1-i] = e
	}
	kept := append([]Event(nil), rev...)
	if got := Timeline(rev); !reflect.DeepEqual(got, want) {
		t.Errorf("reversed input: %s\nwant %s", dumpTimeline(got), dumpTimeline(want))
	}
	if !reflect.DeepEqual(rev, kept) {
		t.Error("Timeline reordered its input")
	}
}

func ms(at time.Time) int { return int(at.Sub(t0) / time.Millisecond) }

func dumpTimeline(tl []Attempt) string {
	var b strings.Builder
	for _, a := range tl {
		fmt.Fprintf(&b, "\n attempt %d %s:", a.Attempt, a.Outcome)
		for _, p := range a.Phases {
			fmt.Fprintf(&b, " %s[%d–%d]", p.Phase, ms(p.Start), ms(p.End))
		}
	}
	return b.String()
}
