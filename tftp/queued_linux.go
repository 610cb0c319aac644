package tftp

import (
	"net"
	"syscall"
)

// answerQueued reports whether a datagram from the client waits unread on
// c: a client that answered in time, whose transfer has not been
// scheduled to read it yet, must not lose its slot for it. A peek that
// does not block; false if c is closing.
func answerQueued(c *net.UDPConn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	queued := false
	rc.Control(func(fd uintptr) {
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		queued = err == nil
	})
	return queued
}
