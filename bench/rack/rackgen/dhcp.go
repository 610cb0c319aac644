package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/sys/unix"
)

// Firmware identity. BIOS PXE ROMs send arch 0 and UNDI 2.1; OVMF sends
// arch 7 and UNDI 3.0 (PXE spec §2.2.1, RFC 4578).
type firmware struct {
	arch    uint16
	vci     string
	undi    []byte
	nbpFile string
}

var (
	fwBIOS = firmware{0, "PXEClient:Arch:00000:UNDI:002001", []byte{1, 2, 1}, "undionly.kpxe"}
	fwUEFI = firmware{7, "PXEClient:Arch:00007:UNDI:003000", []byte{1, 3, 0}, "snponly.efi"}
)

// iPXE's encapsulated option 175 as iPXE sends it: feature flags for
// HTTP (0x13) and PXE extensions (0x11). Its presence alone marks iPXE.
var ipxeEncap = []byte{0x13, 1, 1, 0x11, 1, 1}

// listenDHCP opens a UDP socket for a DHCP client. Broadcast replies reach
// only a socket bound to the wildcard address (docs/LAB.md pitfall 9), so
// the shared firmware socket binds 0.0.0.0:68 pinned to dev; a host's own
// socket for the 4011 exchange binds its address. SO_REUSEADDR on both
// lets them share port 68, as the firmware's single port does.
func listenDHCP(addr, dev string) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
				return
			}
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1); serr != nil {
				return
			}
			if dev != "" {
				serr = unix.BindToDevice(int(fd), dev)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	c, err := lc.ListenPacket(context.Background(), "udp4", net.JoinHostPort(addr, strconv.Itoa(dhcpv4.ClientPort)))
	if err != nil {
		return nil, err
	}
	return c.(*net.UDPConn), nil
}

// bcastClient is the rack's shared port 68: every host's broadcast
// DISCOVER leaves through it and every broadcast OFFER arrives on it; one
// reader hands each reply to the host waiting on its transaction ID.
type bcastClient struct {
	conn *net.UDPConn
	dst  *net.UDPAddr

	mu      sync.Mutex
	waiting map[dhcpv4.TransactionID]chan *dhcpv4.DHCPv4
	stray   int // replies nobody waited for (late duplicates)
}

func newBcastClient(dev string) (*bcastClient, error) {
	c, err := listenDHCP("0.0.0.0", dev)
	if err != nil {
		return nil, fmt.Errorf("dhcp socket on %s: %w", dev, err)
	}
	b := &bcastClient{
		conn:    c,
		dst:     &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ServerPort},
		waiting: map[dhcpv4.TransactionID]chan *dhcpv4.DHCPv4{},
	}
	go b.read()
	return b, nil
}

func (b *bcastClient) Close() error { return b.conn.Close() }

func (b *bcastClient) read() {
	buf := make([]byte, 2048)
	for {
		n, _, err := b.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		m, err := dhcpv4.FromBytes(buf[:n])
		if err != nil || m.OpCode != dhcpv4.OpcodeBootReply {
			continue
		}
		b.mu.Lock()
		ch, ok := b.waiting[m.TransactionID]
		if !ok {
			b.stray++
		}
		b.mu.Unlock()
		if ok {
			select {
			case ch <- m:
			default:
			}
		}
	}
}

// exchange broadcasts req and waits for the reply of type want with
// req's transaction ID, retransmitting on timeout as firmware does (PXE
// spec §2.2.2 doubles 4 s each time; shorter here, the veth drops
// nothing unless the server does). It returns the reply and how many
// retransmissions it took.
func (b *bcastClient) exchange(ctx context.Context, req *dhcpv4.DHCPv4, want dhcpv4.MessageType) (*dhcpv4.DHCPv4, int, error) {
	ch := make(chan *dhcpv4.DHCPv4, 4)
	b.mu.Lock()
	b.waiting[req.TransactionID] = ch
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.waiting, req.TransactionID)
		b.mu.Unlock()
	}()
	raw := req.ToBytes()
	return retry(ctx, func() error {
		_, err := b.conn.WriteTo(raw, b.dst)
		return err
	}, func(d time.Duration) (*dhcpv4.DHCPv4, error) {
		t := time.NewTimer(d)
		defer t.Stop()
		for {
			select {
			case m := <-ch:
				if m.MessageType() == want && sameMAC(m, req) {
					return m, nil
				}
			case <-t.C:
				return nil, errTimeout
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	})
}

var errTimeout = errors.New("timeout")

// dhcpTimeouts are the waits before each retransmission.
var dhcpTimeouts = []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second}

func retry(ctx context.Context, send func() error, wait func(time.Duration) (*dhcpv4.DHCPv4, error)) (*dhcpv4.DHCPv4, int, error) {
	for i, d := range dhcpTimeouts {
		if err := ctx.Err(); err != nil {
			return nil, i, err
		}
		if err := send(); err != nil {
			return nil, i, fmt.Errorf("send: %w", err)
		}
		m, err := wait(d)
		if err == nil {
			return m, i, nil
		}
		if !errors.Is(err, errTimeout) {
			return nil, i, err
		}
	}
	return nil, len(dhcpTimeouts) - 1, fmt.Errorf("no reply after %d tries", len(dhcpTimeouts))
}

func sameMAC(a, b *dhcpv4.DHCPv4) bool {
	return a.ClientHWAddr.String() == b.ClientHWAddr.String()
}

// pxeRequest sends the boot server REQUEST to port 4011 from the host's
// own address (it has one from the site DHCP server by now: ciaddr) and
// waits for the unicast ACK, as OVMF does after a proxy offer without a
// boot menu (PXE spec §2.2.6).
func pxeRequest(ctx context.Context, h host, fw firmware, server net.IP) (*dhcpv4.DHCPv4, int, error) {
	c, err := listenDHCP(h.ip.String(), "")
	if err != nil {
		return nil, 0, fmt.Errorf("socket on %s:68: %w", h.ip, err)
	}
	defer c.Close()
	req, err := firmwareRequest(h, fw, dhcpv4.MessageTypeRequest, false)
	if err != nil {
		return nil, 0, err
	}
	req.ClientIPAddr = h.ip.AsSlice()
	req.SetUnicast()
	raw := req.ToBytes()
	dst := &net.UDPAddr{IP: server, Port: 4011}
	buf := make([]byte, 2048)
	return retry(ctx, func() error {
		_, err := c.WriteTo(raw, dst)
		return err
	}, func(d time.Duration) (*dhcpv4.DHCPv4, error) {
		c.SetReadDeadline(time.Now().Add(d))
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					return nil, errTimeout
				}
				return nil, err
			}
			m, err := dhcpv4.FromBytes(buf[:n])
			if err == nil && m.TransactionID == req.TransactionID && m.MessageType() == dhcpv4.MessageTypeAck {
				return m, nil
			}
		}
	})
}

// siteServer is the site's DHCP server, which gives every host its address
// and which the rack does not simulate (run.sh configures the addresses in
// the client namespace instead). Nothing answers at this address.
var siteServer = net.IPv4(10, 250, 4, 254).To4()

// siteRequest is the broadcast REQUEST a PXE ROM, and iPXE after it, sends
// after the OFFERs to accept the site server's offer of its address
// (RFC 2131 §4.3.2: option 50, and option 54 naming the site server). A
// proxyDHCP server does not answer it but overhears it: in proxy mode it is
// what ties the host's MAC to the address its TFTP and HTTP come from
// (stagehand's --mac-binding strict). Sent once, as the site server's ACK
// it would wait for is not simulated.
func siteRequest(h host, fw firmware, ipxe bool) (*dhcpv4.DHCPv4, error) {
	req, err := firmwareRequest(h, fw, dhcpv4.MessageTypeRequest, ipxe)
	if err != nil {
		return nil, err
	}
	req.UpdateOption(dhcpv4.OptRequestedIPAddress(h.ip.AsSlice()))
	req.UpdateOption(dhcpv4.OptServerIdentifier(siteServer))
	return req, nil
}

// announce broadcasts req without waiting for a reply.
func (b *bcastClient) announce(req *dhcpv4.DHCPv4) error {
	_, err := b.conn.WriteTo(req.ToBytes(), b.dst)
	return err
}

// firmwareRequest builds a DISCOVER or REQUEST as PXE firmware or, with
// ipxe set, as iPXE after the chainload (user class "iPXE", option 175).
func firmwareRequest(h host, fw firmware, typ dhcpv4.MessageType, ipxe bool) (*dhcpv4.DHCPv4, error) {
	xid := dhcpv4.TransactionID{byte(h.idx >> 16), byte(h.idx >> 8), byte(h.idx), byte(typ)}
	if ipxe {
		xid[3] |= 0x80
	}
	mods := []dhcpv4.Modifier{
		dhcpv4.WithHwAddr(h.mac),
		dhcpv4.WithTransactionID(xid),
		dhcpv4.WithMessageType(typ),
		dhcpv4.WithBroadcast(true),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier(fw.vci)),
		dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{byte(fw.arch >> 8), byte(fw.arch)}),
		dhcpv4.WithGeneric(dhcpv4.OptionClientNetworkInterfaceIdentifier, fw.undi),
		dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, append([]byte{0}, h.uuid[:]...)),
		dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionVendorSpecificInformation,
			dhcpv4.OptionClassIdentifier, dhcpv4.OptionTFTPServerName, dhcpv4.OptionBootfileName),
	}
	if ipxe {
		mods = append(mods,
			dhcpv4.WithGeneric(dhcpv4.OptionUserClassInformation, []byte("iPXE")),
			dhcpv4.WithGeneric(dhcpv4.GenericOptionCode(175), ipxeEncap))
	}
	return dhcpv4.New(mods...)
}

// bootFile is the boot file a reply carries: option 67, else the BOOTP
// file field.
func bootFile(m *dhcpv4.DHCPv4) string {
	if f := m.Options.Get(dhcpv4.OptionBootfileName); len(f) > 0 {
		return string(f)
	}
	return m.BootFileName
}
