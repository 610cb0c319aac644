package lab

import (
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// Loss is packet loss between the VMs and the server on a Net's bridge,
// made by nftables: this kernel has no sch_netem, so tc netem is not an
// option. Frames are dropped in the bridge family's input hook (VM → the
// bridge's own address, where stagehand listens) and output hook
// (stagehand → VM), so the VM's and the server's sendto never see an error
// (a drop in an IP output hook would return EPERM to the sender), and
// frames between other ports (the site DHCP peer, the RA peer) are left
// alone: the loss is on the path the test is about.
type Loss struct {
	n       *Net
	Percent int
}

// Names in the namespace's nftables ruleset. The namespace belongs to one
// test, so fixed names cannot collide with another test's.
const (
	lossTable = "sh_loss"
	// lossPorts matches every tap AddTap (StartVM) creates, including taps
	// added after SetLoss: a VM started later is on the lossy path too.
	lossPorts   = "tap*"
	counterToVM = "to_vm"
	counterFrom = "from_vm"
	seenToVM    = "seen_to_vm"
	seenFrom    = "seen_from_vm"
)

// lossRuleset is the nft script for SetLoss: one transaction that replaces
// any earlier table (so calling SetLoss again resets the counters) with
// one that drops pct percent of frames in each direction, chosen
// independently per frame by the kernel (numgen random), and counts the
// frames seen and dropped per direction in named counters.
func lossRuleset(pct int) (string, error) {
	if pct <= 0 || pct >= 100 {
		return "", fmt.Errorf("loss percent %d: want 1..99", pct)
	}
	return fmt.Sprintf(`add table bridge %[1]s
delete table bridge %[1]s
table bridge %[1]s {
	counter %[3]s { }
	counter %[4]s { }
	counter %[6]s { }
	counter %[7]s { }
	chain from_vms {
		type filter hook input priority 0; policy accept;
		iifname "%[2]s" counter name "%[7]s"
		iifname "%[2]s" numgen random mod 100 < %[5]d counter name "%[4]s" drop
	}
	chain to_vms {
		type filter hook output priority 0; policy accept;
		oifname "%[2]s" counter name "%[6]s"
		oifname "%[2]s" numgen random mod 100 < %[5]d counter name "%[3]s" drop
	}
}
`, lossTable, lossPorts, counterToVM, counterFrom, pct, seenToVM, seenFrom), nil
}

// SetLoss drops percent (1..99) of the frames between every VM tap on the
// bridge and the server's address, in each direction. It applies to taps
// created before and after the call; calling it again replaces the rule
// and resets the counters. The table goes with the namespace.
func (n *Net) SetLoss(percent int) *Loss {
	n.t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		n.t.Fatalf("lab: nft not found (apt-get install nftables): %v", err)
	}
	script, err := lossRuleset(percent)
	if err != nil {
		n.t.Fatalf("lab: SetLoss on %s: %v", n.NS, err)
	}
	cmd := exec.Command("ip", "netns", "exec", n.NS, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		n.t.Fatalf("lab: SetLoss on %s: nft -f: %v\n%s\nscript:\n%s", n.NS, err, out, script)
	}
	// TCP on the bridge hands it GSO super-frames of up to 64 KB, and the
	// output hook sees each as one frame: a drop would lose ~44 wire frames
	// at once and the counter would undercount the loss. One segment per
	// skb makes each wire frame its own coin toss. Only this namespace's
	// bridge, and only for tests that ask for loss.
	n.ip("link", "set", n.Bridge, "gso_max_segs", "1")
	return &Loss{n: n, Percent: percent}
}

// Dropped reads the loss counters: frames dropped on their way to the VMs
// and on their way from them since SetLoss.
func (l *Loss) Dropped() (toVM, fromVM uint64) {
	l.n.t.Helper()
	return l.counter(counterToVM), l.counter(counterFrom)
}

// Seen reads how many frames reached the loss rules on their way to the
// VMs and from them (dropped or not) since SetLoss.
func (l *Loss) Seen() (toVM, fromVM uint64) {
	l.n.t.Helper()
	return l.counter(seenToVM), l.counter(seenFrom)
}

func (l *Loss) counter(name string) uint64 {
	l.n.t.Helper()
	out, err := exec.Command("ip", "netns", "exec", l.n.NS, "nft", "list", "counter", "bridge", lossTable, name).CombinedOutput()
	if err != nil {
		l.n.t.Fatalf("lab: loss counter %s in %s: %v\n%s", name, l.n.NS, err, out)
	}
	p, err := parseCounterPackets(string(out))
	if err != nil {
		l.n.t.Fatalf("lab: loss counter %s in %s: %v", name, l.n.NS, err)
	}
	return p
}

var packetsRe = regexp.MustCompile(`\bpackets (\d+)\b`)

// parseCounterPackets returns the packet count from `nft list counter`
// output ("counter to_vm { packets 12 bytes 3456 }", over several lines).
func parseCounterPackets(out string) (uint64, error) {
	m := packetsRe.FindAllStringSubmatch(out, -1)
	if len(m) != 1 {
		return 0, fmt.Errorf("want one \"packets N\" in nft output, found %d: %q", len(m), out)
	}
	return strconv.ParseUint(m[0][1], 10, 64)
}

func (l *Loss) String() string {
	return fmt.Sprintf("%d%% loss between %s and %s in %s", l.Percent, lossPorts, l.n.ServerIP, l.n.NS)
}
