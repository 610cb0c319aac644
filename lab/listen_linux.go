package lab

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// ListenIn opens a stream listener (net.Listen's network and address)
// inside the named namespace (as listed by `ip netns`). The socket keeps
// that namespace for its lifetime, so a server in the test process can
// serve VMs on the namespace's bridge.
func ListenIn(ns, network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := InNS(ns, func() error {
		var err error
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// ListenPacketIn is ListenIn for packet sockets (net.ListenPacket). A DHCP
// listener must bind the wildcard address to see broadcasts (docs/LAB.md
// pitfall 9); in a namespace of its own no SO_BINDTODEVICE is needed.
func ListenPacketIn(ns, network, addr string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := InNS(ns, func() error {
		var err error
		pc, err = (&net.ListenConfig{}).ListenPacket(context.Background(), network, addr)
		return err
	})
	return pc, err
}

// InNS runs fn on an OS thread switched into the named network namespace.
// fn must not start goroutines that expect the namespace: only the calling
// thread is switched. Sockets created by fn stay in the namespace.
func InNS(ns string, fn func() error) error {
	target, err := os.Open(filepath.Join("/run/netns", ns))
	if err != nil {
		return fmt.Errorf("netns %s: %w", ns, err)
	}
	defer target.Close()

	errc := make(chan error, 1)
	go func() {
		// The thread is only unlocked once it is back in its own namespace;
		// if restoring fails the goroutine exits still locked and the
		// runtime destroys the thread instead of reusing it elsewhere.
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("restore netns: %w (after fn: %v)", err, ferr)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
