package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Net is a network namespace holding one bridge: the test's "provisioning
// network". The server side (stagehand, a Go listener, dnsmasq) uses
// ServerIP on the bridge; VMs attach through taps, other hosts through
// veths into namespaces of their own.
type Net struct {
	NS       string       // namespace name, unique per call
	Bridge   string       // bridge interface inside NS
	ServerIP netip.Addr   // the server's address on Bridge
	Prefix   netip.Prefix // the bridge's subnet, masked (e.g. 10.99.0.0/24)

	t     testing.TB
	mu    sync.Mutex
	links int
	cmds  []*exec.Cmd // handed out by Command, killed in cleanup
}

var nameRe = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,32}$`)

// NewNet creates a namespace named after name plus a random suffix (so
// parallel tests and leftovers of a crashed run never collide), a bridge
// in it with cidr (the server's address, e.g. "10.99.0.1/24") assigned, and
// lo up. Cleanup kills every process left in the namespace and deletes it.
func NewNet(t testing.TB, name, cidr string) *Net {
	t.Helper()
	if !nameRe.MatchString(name) {
		t.Fatalf("lab: bad net name %q", name)
	}
	pfx, err := netip.ParsePrefix(cidr)
	if err != nil || !pfx.Addr().Is4() {
		t.Fatalf("lab: bad cidr %q: %v", cidr, err)
	}
	n := &Net{
		NS:       uniqueName(name),
		Bridge:   "br0",
		ServerIP: pfx.Addr(),
		Prefix:   pfx.Masked(),
		t:        t,
	}
	mustRun(t, "ip", "netns", "add", n.NS)
	t.Cleanup(func() {
		n.killCommands()
		deleteNS(t, n.NS)
	})
	n.ip("link", "set", "lo", "up")
	// STP stays off (the default), so ports forward at once: firmware gives
	// up on DHCP long before a 15 s forward delay would expire.
	n.ip("link", "add", n.Bridge, "type", "bridge")
	n.ip("addr", "add", cidr, "dev", n.Bridge)
	n.ip("link", "set", n.Bridge, "up")
	return n
}

// AddTap creates a tap named name on the bridge, for QEMU's
// -netdev tap,ifname=NAME. The name is local to the namespace.
func (n *Net) AddTap(name string) string {
	n.t.Helper()
	n.ip("tuntap", "add", "dev", name, "mode", "tap")
	n.ip("link", "set", name, "master", n.Bridge)
	n.ip("link", "set", name, "up")
	return name
}

// AddPeer creates a second namespace, joined to the bridge by a veth whose
// far end is "eth0" in it with cidr assigned (none if cidr is ""), and
// returns its name: another
// host on the provisioning network. It is deleted (with its processes) in
// t's cleanup.
func (n *Net) AddPeer(t testing.TB, name, cidr string) string {
	t.Helper()
	if !nameRe.MatchString(name) {
		t.Fatalf("lab: bad peer name %q", name)
	}
	if _, err := netip.ParsePrefix(cidr); cidr != "" && err != nil {
		t.Fatalf("lab: bad cidr %q: %v", cidr, err)
	}
	peer := uniqueName(name)
	mustRun(t, "ip", "netns", "add", peer)
	t.Cleanup(func() { deleteNS(t, peer) })
	mustRun(t, "ip", "-n", peer, "link", "set", "lo", "up")
	n.attach(t, peer, "eth0", cidr)
	return peer
}

// attach joins the existing namespace ns to the bridge by a veth whose far
// end is ifname in ns, with cidr assigned (none if cidr is ""), and up.
func (n *Net) attach(t testing.TB, ns, ifname, cidr string) {
	t.Helper()
	n.mu.Lock()
	n.links++
	near := "vp" + strconv.Itoa(n.links)
	n.mu.Unlock()
	n.ip("link", "add", near, "type", "veth", "peer", "name", ifname, "netns", ns)
	n.ip("link", "set", near, "master", n.Bridge)
	n.ip("link", "set", near, "up")
	if cidr != "" {
		mustRun(t, "ip", "-n", ns, "addr", "add", cidr, "dev", ifname)
	}
	mustRun(t, "ip", "-n", ns, "link", "set", ifname, "up")
}

// Command returns name with args to be run inside the namespace.
// The Net remembers it and kills it in cleanup: "ip netns pids" alone
// misses a process that has opened the namespace but not yet entered it,
// which then lives on in the namespace after "ip netns del".
func (n *Net) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.NS, name}, args...)...)
	n.mu.Lock()
	n.cmds = append(n.cmds, cmd)
	n.mu.Unlock()
	return cmd
}

// killCommands sends SIGKILL to every started command from Command. "ip
// netns exec" execs the program, so the PID is the program's. os.Process
// holds a pidfd, so a reaped and reused PID is never hit.
func (n *Net) killCommands() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, c := range n.cmds {
		if c.Process != nil {
			_ = c.Process.Kill()
		}
	}
}

// Host returns the i-th address of the subnet (Host(1) is 10.99.0.1 in
// 10.99.0.0/24), for picking DHCP ranges and peer addresses.
func (n *Net) Host(i int) netip.Addr {
	a := n.Prefix.Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v += uint32(i)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func (n *Net) ip(args ...string) {
	n.t.Helper()
	mustRun(n.t, "ip", append([]string{"-n", n.NS}, args...)...)
}

func uniqueName(name string) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return "sh-" + name + "-" + hex.EncodeToString(b[:])
}

func mustRun(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("lab: %s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// deleteNS kills what is left in ns by PID (only processes inside a
// namespace this package created) and deletes it.
func deleteNS(t testing.TB, ns string) {
	for i := 0; i < 50; i++ {
		out, err := exec.Command("ip", "netns", "pids", ns).Output()
		if err != nil {
			break
		}
		pids := strings.Fields(string(out))
		if len(pids) == 0 {
			break
		}
		for _, p := range pids {
			if pid, err := strconv.Atoi(p); err == nil && pid > 1 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
		t.Errorf("lab: ip netns del %s: %v\n%s", ns, err, out)
	}
}

func (n *Net) String() string { return fmt.Sprintf("%s(%s on %s)", n.NS, n.ServerIP, n.Bridge) }
