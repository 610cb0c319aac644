package inventory

import (
	"math"
	"slices"
	"strings"
	"time"
)

// Phase is one step of a network boot, named by the milestone that ends
// it. Phases are in boot order; a boot that skips one (an iPXE NIC ROM
// has no firmware DHCP nor boot-file transfer) omits it.
type Phase string

// The phases, in order, and the event that is each one's milestone.
const (
	PhaseFirmwareDHCP Phase = "firmware-dhcp" // the firmware's DHCP ACK (full, proxy on 67 or 4011)
	PhaseBootFile     Phase = "boot-file"     // the iPXE binary transferred (TFTP, or HTTP for UEFI HTTP boot)
	PhaseIPXEDHCP     Phase = "ipxe-dhcp"     // iPXE's DHCP ACK
	PhaseStage1       Phase = "stage1"        // the stage-1 script served
	PhaseStage2       Phase = "stage2"        // the install script served ("booting")
	PhaseKernel       Phase = "kernel"        // the kernel served
	PhaseInitrd       Phase = "initrd"        // the initrd served
	PhaseRootFS       Phase = "rootfs"        // the live root image served
	PhaseUserData     Phase = "userdata"      // the user-data served
	PhaseDone         Phase = "done"          // the installer's callback (done or failed)
)

// Phases lists every phase in boot order: the one list the timeline,
// the report's columns and the metric's labels come from.
func Phases() []Phase {
	return []Phase{PhaseFirmwareDHCP, PhaseBootFile, PhaseIPXEDHCP, PhaseStage1, PhaseStage2,
		PhaseKernel, PhaseInitrd, PhaseRootFS, PhaseUserData, PhaseDone}
}

// The boot clients a "dhcp" event names ("… client ipxe arch …"), so
// that the timeline tells the firmware's DHCP from iPXE's.
const (
	DHCPClientFirmware = "firmware-pxe"  // a PXE ROM (BIOS or UEFI)
	DHCPClientHTTPBoot = "firmware-http" // UEFI HTTP boot
	DHCPClientIPXE     = "ipxe"          // iPXE (NIC ROM or chained)
)

// Stage1Detail begins the detail of the "script" event recorded when a
// host is served the stage-1 script.
const Stage1Detail = "stage 1 served"

// BootFileKind is the kind of the event recorded when an iPXE binary is
// served over HTTP (UEFI HTTP boot); over TFTP the event is "tftp".
const BootFileKind = "bootfile"

// Outcomes of a boot attempt.
const (
	OutcomeInstalled   = "installed"
	OutcomeFailed      = "failed"
	OutcomeInProgress  = "in progress"
	OutcomeInterrupted = "interrupted" // a later boot began before this one's callback
)

// attemptGap: a DHCP reply this long after the last event of the boot
// in progress begins a new boot, whatever that boot had reached.
const attemptGap = 10 * time.Minute

// Attempt is one network boot of a host and its phases.
type Attempt struct {
	// Attempt is the install attempt the boot served: the host's
	// Attempt when its install script was served; before that, the
	// newest its events carry (the previous attempt's, on a reinstall).
	Attempt int           `json:"attempt"`
	Start   time.Time     `json:"start"`
	End     time.Time     `json:"end"`
	Outcome string        `json:"outcome"`
	Phases  []PhaseTiming `json:"phases"`
}

// PhaseTiming is one phase of an attempt: from the previous milestone
// present (the attempt's first DHCP reply for the first) to its own.
type PhaseTiming struct {
	Phase   Phase     `json:"phase"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Seconds float64   `json:"seconds"` // End − Start, to the millisecond
}

// Phase returns a's timing of p, if a has it.
func (a Attempt) Phase(p Phase) (PhaseTiming, bool) {
	for _, t := range a.Phases {
		if t.Phase == p {
			return t, true
		}
	}
	return PhaseTiming{}, false
}

// Timeline groups a host's events (as Store.Events returns them) into
// its network boots, oldest first, each with its phases.
//
// Events carry the attempt current when they were recorded, and a new
// attempt is numbered only when its install script is served, so the
// DHCP, TFTP and stage-1 events of a boot carry the previous number.
// Boots are therefore told apart by what happens, not by that number:
// a new boot begins with a DHCP reply to a boot client (firmware or
// iPXE) after the boot in progress has passed that client's phase, after
// that boot ended (callback, local boot, reprovision), or attemptGap
// after its last event; a boot file transferred again begins one too.
// Boots that went to the local disk (an installed host) are no install
// attempts: they are left out. Timeline does no I/O and does not modify
// events.
func Timeline(events []Event) []Attempt {
	evs := slices.Clone(events)
	slices.SortStableFunc(evs, func(a, b Event) int { return a.Time.Compare(b.Time) })
	var (
		out []Attempt
		cur *boot
	)
	flush := func(next bool) {
		if cur != nil && !cur.local {
			out = append(out, cur.attempt(next))
		}
		cur = nil
	}
	for _, e := range evs {
		m, ok := milestoneOf(e)
		if !ok {
			continue
		}
		if cur != nil && cur.startsNew(m, e.Time) {
			flush(true)
		}
		if cur == nil {
			if m.phase == "" && m.client == "" && m.end != "local" {
				continue // begins nothing: the installer's DHCP, a reprovision
			}
			cur = &boot{start: e.Time, at: map[Phase]time.Time{}, acked: map[Phase]bool{}}
		}
		cur.add(m, e)
	}
	flush(false)
	return out
}

// milestone is what one event means to a boot.
type milestone struct {
	phase  Phase  // the milestone it may be ("" for none)
	client Phase  // a DHCP reply to a boot client: that client's phase
	end    string // an outcome or "local": the boot is over
	ack    bool   // a DHCP reply that is an ACK (else an OFFER or NAK)
}

// milestoneOf reads e; ok is false for events no boot is made of.
func milestoneOf(e Event) (milestone, bool) {
	switch e.Kind {
	case "dhcp":
		return dhcpMilestone(e.Detail), true
	case "tftp":
		if strings.Contains(e.Detail, " failed: ") {
			return milestone{}, false // a PXE tsize probe, or a lost transfer: the firmware retries
		}
		return milestone{phase: PhaseBootFile}, true
	case BootFileKind:
		return milestone{phase: PhaseBootFile}, true
	case "script":
		if strings.HasPrefix(e.Detail, Stage1Detail) {
			return milestone{phase: PhaseStage1}, true
		}
	case "booting":
		return milestone{phase: PhaseStage2}, true
	case "artifact":
		// "PROFILE/FILE": the route names the file kernel, initrd or rootfs.
		switch p := Phase(e.Detail[strings.LastIndexByte(e.Detail, '/')+1:]); p {
		case PhaseKernel, PhaseInitrd, PhaseRootFS:
			return milestone{phase: p}, true
		}
	case "userdata":
		return milestone{phase: PhaseUserData}, true
	case StateInstalled.String():
		return milestone{phase: PhaseDone, end: OutcomeInstalled}, true
	case StateFailed.String():
		return milestone{phase: PhaseDone, end: OutcomeFailed}, true
	case "localboot":
		return milestone{end: "local"}, true
	case "reprovision":
		return milestone{end: OutcomeInterrupted}, true
	}
	return milestone{}, false
}

// dhcpMilestone reads a "dhcp" event's detail: "MODE TYPE … client
// CLIENT arch …" for a boot client; without "client", an OS's DHCP.
func dhcpMilestone(detail string) milestone {
	f := strings.Fields(detail)
	i := slices.Index(f, "client")
	if i < 0 || i+1 >= len(f) || len(f) < 2 {
		return milestone{}
	}
	m := milestone{ack: f[1] == "ACK", client: PhaseFirmwareDHCP}
	if f[i+1] == DHCPClientIPXE {
		m.client = PhaseIPXEDHCP
	}
	m.phase = m.client
	return m
}

// boot is the boot being put together.
type boot struct {
	start, last time.Time
	at          map[Phase]time.Time // each milestone's time
	acked       map[Phase]bool      // DHCP phases that have an ACK
	number      int                 // the attempt number, best known
	staged      bool                // number is the install script's
	outcome     string
	local       bool
}

// rank is p's place in Phases.
func rank(p Phase) int { return slices.Index(Phases(), p) }

// furthest is the rank of the latest phase b has reached (-1: none).
func (b *boot) furthest() int {
	r := -1
	for p := range b.at {
		r = max(r, rank(p))
	}
	return r
}

// startsNew reports whether m, at t, belongs to a boot after b.
func (b *boot) startsNew(m milestone, t time.Time) bool {
	if b.outcome != "" || b.local {
		return m.end != OutcomeInterrupted && (m.client != "" || m.phase != "" || m.end != "")
	}
	switch {
	case m.client != "":
		return t.Sub(b.last) > attemptGap || b.furthest() > rank(m.client)
	case m.phase == PhaseBootFile:
		// The firmware fetched its boot file again: it booted again,
		// though its DHCP may have gone unrecorded (the event budget).
		return b.furthest() >= rank(PhaseBootFile)
	}
	return false
}

// add puts e, read as m, into b.
func (b *boot) add(m milestone, e Event) {
	b.last = e.Time
	if !b.staged && e.Attempt > b.number {
		b.number = e.Attempt
	}
	if m.phase == PhaseStage2 {
		b.number, b.staged = e.Attempt, true
	}
	_, seen := b.at[m.phase]
	switch {
	case m.client != "":
		// A DHCP phase ends at its client's last ACK from us; in proxy
		// mode a client may take its address from the site's server and
		// hear only our OFFER, which then ends it.
		if m.ack || !b.acked[m.client] {
			b.at[m.client] = e.Time
		}
		if m.ack {
			b.acked[m.client] = true
		}
	case m.phase != "" && !seen:
		b.at[m.phase] = e.Time // other steps end at their first time
	}
	switch {
	case m.end == "local":
		b.local = true
	case m.end != "" && b.outcome == "":
		b.outcome = m.end
	}
}

// attempt is b's record; next says a later boot followed it.
func (b *boot) attempt(next bool) Attempt {
	a := Attempt{Attempt: b.number, Start: b.start, End: b.last, Outcome: b.outcome, Phases: []PhaseTiming{}}
	switch {
	case a.Outcome != "":
	case next:
		a.Outcome = OutcomeInterrupted
	default:
		a.Outcome = OutcomeInProgress
	}
	from := b.start
	for _, p := range Phases() {
		end, ok := b.at[p]
		if !ok {
			continue
		}
		start := from
		if end.Before(start) {
			start = end // out of order (a slow commit): an empty phase, never a negative one
		}
		a.Phases = append(a.Phases, PhaseTiming{Phase: p, Start: start, End: end, Seconds: seconds(end.Sub(start))})
		from = end
	}
	if len(a.Phases) > 0 {
		a.End = a.Phases[len(a.Phases)-1].End
	}
	return a
}

// seconds is d in seconds, to the millisecond.
func seconds(d time.Duration) float64 { return math.Round(d.Seconds()*1000) / 1000 }
