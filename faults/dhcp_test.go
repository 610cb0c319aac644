package faults

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/stagehand-dev/stagehand/dhcp/perfdhcp"
	"github.com/stagehand-dev/stagehand/inventory"
	"github.com/stagehand-dev/stagehand/lab"
)

// dhcpLab is the real binary serving full DHCP on a bridge in a network
// namespace, and a client namespace on that bridge where perfdhcp runs
// as a relay agent (giaddr = the client's address, replies to its port
// 67, no raw socket), as bench/dhcp/run.sh drives it.
type dhcpLab struct {
	*lab.Process // the running serve process; a restart replaces it
	t            *testing.T
	net          *lab.Net
	cliNS        string
	cliIP        string
	dataDir      string
	ipxeDir      string
	macsFile     string
}

func newDHCPLab(t *testing.T) *dhcpLab {
	t.Helper()
	if _, err := exec.LookPath("perfdhcp"); err != nil {
		t.Fatalf("perfdhcp not found: install the Debian package kea-admin (%v)", err)
	}
	// A /16 so that the pool (2 048 addresses, more than the 600 MACs)
	// and the client lie in the server's subnet.
	n := lab.NewNet(t, "fdhcp", "10.79.0.1/16")
	// The data dir on disk, not tmpfs: a commit must take as long as an
	// fsync does, or no SIGKILL ever lands while one is in flight.
	data, err := os.MkdirTemp("/var/tmp", "sh-fdhcp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(data) })
	d := &dhcpLab{t: t, net: n, cliIP: "10.79.0.2", dataDir: data, ipxeDir: t.TempDir()}
	d.cliNS = n.AddPeer(t, "fdcli", d.cliIP+"/16")
	for _, f := range []string{"undionly.kpxe", "snponly.efi"} {
		os.WriteFile(filepath.Join(d.ipxeDir, f), []byte("ipxe "+f), 0o644)
	}
	// 600 random locally administered MACs, the same every run.
	r := rand.New(rand.NewPCG(5, 0))
	var b strings.Builder
	for range 600 {
		fmt.Fprintf(&b, "02:%02x:%02x:%02x:%02x:%02x\n", r.IntN(256), r.IntN(256), r.IntN(256), r.IntN(256), r.IntN(256))
	}
	d.macsFile = filepath.Join(t.TempDir(), "macs.txt")
	if err := os.WriteFile(d.macsFile, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

// start runs `stagehand serve` in full mode in the server namespace and
// waits until it listens on port 67.
func (d *dhcpLab) start() {
	d.t.Helper()
	// ip netns exec execs into the server, so Kill's SIGKILL reaches the
	// server itself.
	d.Process = lab.Start(d.t, d.net.NS, binary, "serve", "--interface", d.net.Bridge,
		"--dhcp-mode", "full", "--dhcp-range", "10.79.64.0-10.79.71.255", "--unknown-hosts", "discover",
		// The perfdhcp MACs are all strangers: let them have the whole pool.
		"--dhcp-unknown-share", "100",
		// perfdhcp is a relay agent on the segment; no relay is trusted
		// by default.
		"--dhcp-trusted-relays", d.cliIP,
		"--data-dir", d.dataDir, "--ipxe-dir", d.ipxeDir, "--http-port", "8080", "--tftp-port", "69",
		"--log-format", "json", "--log-level", "warn")
	d.t.Cleanup(d.Kill) // runs before lab's graceful Stop: a leftover server is killed
	d.WaitReady(d.t, "on port 67", 15*time.Second, func() bool {
		out, _ := exec.Command("ip", "netns", "exec", d.net.NS, "ss", "-Hlun", "sport = :67").Output()
		return len(bytes.TrimSpace(out)) > 0
	})
}

// perfdhcp starts a DORA load of rate exchanges/s for secs seconds,
// recording every ACKed lease (-x l). Its output is read after it exits.
func (d *dhcpLab) perfdhcp(rate, secs int) (*exec.Cmd, *bytes.Buffer) {
	d.t.Helper()
	var out bytes.Buffer
	cmd := exec.Command("ip", "netns", "exec", d.cliNS, "perfdhcp", "-4", "-r", fmt.Sprint(rate), "-p", fmt.Sprint(secs),
		"-l", d.cliIP, "-M", d.macsFile, "-x", "l", d.net.ServerIP.String())
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, &out
}

// storedLeases opens the store the dead server left (bbolt's page check
// first, through checkDB) and returns MAC → IP.
func (d *dhcpLab) storedLeases() map[string]string {
	d.t.Helper()
	(&server{t: d.t, dataDir: d.dataDir}).checkDB()
	st, err := inventory.Open(d.dataDir, inventory.Options{})
	if err != nil {
		d.t.Fatalf("reopen after SIGKILL: %v", err)
	}
	defer st.Close()
	ls, err := st.Leases()
	if err != nil {
		d.t.Fatal(err)
	}
	m := make(map[string]string, len(ls))
	for _, l := range ls {
		m[l.MAC] = l.IP
	}
	return m
}

// initReboot sends, as a relay agent in the client namespace, the
// INIT-REBOOT REQUEST (RFC 2131 §4.3.2: option 50, no server identifier,
// ciaddr 0) of a client that remembers ip, and returns the reply.
func (d *dhcpLab) initReboot(conn net.PacketConn, mac net.HardwareAddr, ip net.IP) *dhcpv4.DHCPv4 {
	d.t.Helper()
	req, err := dhcpv4.New(dhcpv4.WithHwAddr(mac), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip)))
	if err != nil {
		d.t.Fatal(err)
	}
	req.GatewayIPAddr = net.ParseIP(d.cliIP).To4()
	req.HopCount = 1
	dst := &net.UDPAddr{IP: d.net.ServerIP.AsSlice(), Port: 67}
	buf := make([]byte, 2048)
	for try := 0; try < 3; try++ { // UDP: a lost packet is retried, as a client would
		if _, err := conn.WriteTo(req.ToBytes(), dst); err != nil {
			d.t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				break
			}
			if r, err := dhcpv4.FromBytes(buf[:n]); err == nil && r.TransactionID == req.TransactionID {
				return r
			}
		}
	}
	d.t.Fatalf("no reply to the INIT-REBOOT of %v for %v", mac, ip)
	return nil
}

// SIGKILL while full DHCP is under load from a real client: every lease
// perfdhcp saw ACKed is in the store afterwards (the ACK is sent only
// after the lease is committed), the file passes bbolt's check, and after
// a restart on the same data dir clients that had a lease get the same
// address back by INIT-REBOOT.
func TestKillDuringLeaseWrites(t *testing.T) {
	d := newDHCPLab(t)
	acked := map[string]string{}
	for round, killAfter := range []time.Duration{300 * time.Millisecond, 700 * time.Millisecond, 1100 * time.Millisecond, 1500 * time.Millisecond} {
		d.start()
		cmd, out := d.perfdhcp(400, 3)
		time.Sleep(killAfter)
		d.Kill()
		cmd.Wait() // perfdhcp exits 3 when exchanges are incomplete: expected here
		got, n, err := perfdhcp.AckedLeases(bytes.NewReader(out.Bytes()))
		if err != nil {
			t.Fatalf("round %d: %v\n%s", round, err, lab.Tail(out.String(), 30))
		}
		stored := d.storedLeases()
		if miss := perfdhcp.Missing(got, stored); len(miss) > 0 {
			t.Fatalf("round %d, SIGKILL %v into the load: %d of %d ACKed leases not in the store, e.g.\n%s",
				round, killAfter, len(miss), len(got), strings.Join(miss[:min(5, len(miss))], "\n"))
		}
		t.Logf("round %d: SIGKILL %v into the load: %d ACKs for %d MACs, all of them among %d stored leases", round, killAfter, n, len(got), len(stored))
		for mac, ip := range got {
			acked[mac] = ip
		}
	}

	// While the server is down, reserve an address outside the range for
	// a host (the wiring from the inventory to the DHCP server).
	reservedMAC := net.HardwareAddr{0x02, 0xaa, 0, 0, 0, 0x50}
	st, err := inventory.Open(d.dataDir, inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateHost(inventory.Host{MAC: reservedMAC.String(), Name: "fixed", DHCPAddress: "10.79.0.50"}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	// Restart on the same data dir: clients come back with the address
	// they remember. Every one was ACKed and is stored, so every one must
	// get an ACK for the same address.
	d.start()
	var conn net.PacketConn
	if err := lab.InNS(d.cliNS, func() (err error) {
		conn, err = net.ListenPacket("udp4", d.cliIP+":67")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	checked := 0
	for mac, ip := range acked {
		if checked == 25 {
			break
		}
		hw, _ := net.ParseMAC(mac)
		r := d.initReboot(conn, hw, net.ParseIP(ip).To4())
		if r.MessageType() != dhcpv4.MessageTypeAck || r.YourIPAddr.String() != ip {
			t.Errorf("after restart, INIT-REBOOT of %s for %s: %v", mac, ip, r.Summary())
		}
		checked++
	}
	// And one that asks for another client's address is refused.
	var other string
	for _, ip := range acked {
		other = ip
		break
	}
	if r := d.initReboot(conn, net.HardwareAddr{0x02, 0xaa, 0, 0, 0, 1}, net.ParseIP(other).To4()); r.MessageType() != dhcpv4.MessageTypeNak {
		t.Errorf("stranger's INIT-REBOOT for the leased %s: %v", other, r.Summary())
	}
	// The reserved host gets its address; nobody else does.
	if r := d.initReboot(conn, reservedMAC, net.IPv4(10, 79, 0, 50).To4()); r.MessageType() != dhcpv4.MessageTypeAck || r.YourIPAddr.String() != "10.79.0.50" {
		t.Errorf("reserved host's REQUEST for its address: %v", r.Summary())
	}
	if r := d.initReboot(conn, net.HardwareAddr{0x02, 0xaa, 0, 0, 0, 2}, net.IPv4(10, 79, 0, 50).To4()); r.MessageType() != dhcpv4.MessageTypeNak {
		t.Errorf("stranger's REQUEST for a reserved address: %v", r.Summary())
	}
	t.Logf("after restart: %d clients got their address back", checked)
}
