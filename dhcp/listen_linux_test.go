package dhcp

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The DHCP socket queues a burst instead of dropping it: its receive
// buffer is rcvBuf (root), or as much of it as net.core.rmem_max allows.
func TestListenUDPReceiveBuffer(t *testing.T) {
	c, err := ListenUDP("", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, err := c.(*net.UDPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got int
	var gerr error
	if err := raw.Control(func(fd uintptr) {
		got, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
	}); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	want := rcvBuf
	if os.Geteuid() != 0 {
		b, err := os.ReadFile("/proc/sys/net/core/rmem_max")
		if err != nil {
			t.Fatal(err)
		}
		max, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		want = min(want, max)
	}
	// Linux reports twice the size asked for (socket(7): bookkeeping).
	if got < want {
		t.Errorf("SO_RCVBUF = %d, want at least %d", got, want)
	}
}
