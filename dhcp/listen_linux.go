package dhcp

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// ListenUDP opens a UDP socket on the wildcard address and port for Serve.
// Linux does not deliver broadcast DHCP requests to a socket bound to a
// unicast address (QEMU-LAB.md pitfall 9), so the socket binds 0.0.0.0 and
// is pinned to ifname with SO_BINDTODEVICE, which also sends broadcast
// replies out of that interface from its address. SO_BROADCAST allows
// replies to 255.255.255.255; SO_REUSEADDR lets a restarted server bind at
// once. With ifname empty the socket is not pinned, and broadcasts leave
// by the default route: set it on any host with more than one interface.
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
			if ifname != "" {
				serr = unix.BindToDevice(int(fd), ifname)
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
