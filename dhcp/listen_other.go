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

// ReceiveBufferWanted is the receive buffer ListenUDP asks for on Linux.
const ReceiveBufferWanted = 4 << 20

// ReceiveBuffer is implemented on Linux only.
func ReceiveBuffer(c net.PacketConn) int { return 0 }
