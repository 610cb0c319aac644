package dhcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// rcvBuf is the socket receive buffer ListenUDP asks for: about 4 000
// queued requests, 0.4 s of a 10 000/s storm.
const rcvBuf = 4 << 20

// ListenUDP opens a UDP socket on the wildcard address and port for Serve.
// Linux does not deliver broadcast DHCP requests to a socket bound to a
// unicast address (docs/LAB.md pitfall 9), so the socket binds 0.0.0.0 and
// is pinned to ifname with SO_BINDTODEVICE, which also sends broadcast
// replies out of that interface from its address. SO_BROADCAST allows
// replies to 255.255.255.255; SO_REUSEADDR lets a restarted server bind at
// once. With ifname empty the socket is not pinned, and broadcasts leave
// by the default route: set it on any host with more than one interface.
//
// The receive buffer is raised to rcvBuf so that a burst is queued, not
// dropped, while the workers catch up.
func ListenUDP(ifname string, port int) (net.PacketConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
				return
			}
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1); serr != nil {
				return
			}
			// A boot storm arrives faster than a GC pause or a busy
			// CPU drains: the default receive buffer (~200 KB, a few
			// hundred requests) overflowed within 20 ms at 10 000
			// DISCOVERs/s in the benchmark. FORCE needs CAP_NET_ADMIN;
			// without it, SO_RCVBUF is capped by net.core.rmem_max and
			// ReceiveBuffer tells the caller so.
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBuf) != nil {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBuf)
			}
			if ifname != "" {
				if serr = unix.BindToDevice(int(fd), ifname); errors.Is(serr, unix.EPERM) {
					serr = fmt.Errorf("SO_BINDTODEVICE %s: %w (pinning the socket to the interface needs root or CAP_NET_RAW)", ifname, serr)
				}
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	c, err := lc.ListenPacket(context.Background(), "udp4", net.JoinHostPort("0.0.0.0", strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("dhcp: listen on %q port %d: %w", ifname, port, err)
	}
	return c, nil
}

// ReceiveBufferWanted is the receive buffer ListenUDP asks for.
const ReceiveBufferWanted = rcvBuf

// ReceiveBuffer returns the receive buffer c got, as the kernel accounts
// it (twice what was set, for its bookkeeping), or 0 if it cannot be read.
// Below ReceiveBufferWanted, the process had no CAP_NET_ADMIN and
// net.core.rmem_max capped the request.
func ReceiveBuffer(c net.PacketConn) int {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	var n int
	if rc.Control(func(fd uintptr) { n, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF) }) != nil || err != nil {
		return 0
	}
	return n
}
