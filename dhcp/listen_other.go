//go:build !linux

package dhcp

import (
	"errors"
	"net"
)

// ListenUDP is implemented on Linux only (SO_BINDTODEVICE).
func ListenUDP(ifname string, port int) (net.PacketConn, error) {
	return nil, errors.New("dhcp: ListenUDP needs Linux")
}
