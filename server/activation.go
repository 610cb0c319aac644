package server

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Socket activation, as sd_listen_fds(3) describes it: the service
// manager (systemd's stagehand.socket, or a test harness) opens the
// sockets and starts the server with them at descriptors 3, 4, ...;
// LISTEN_FDS is their count, LISTEN_FDNAMES their colon-separated names
// (FileDescriptorName=), and LISTEN_PID the pid they are meant for, so a
// child that inherits the environment does not take them too. The
// manager keeps its copy of each socket: a port is never free between a
// crash and the restart, and nobody else can take it meanwhile.

// Names of inherited sockets, as FileDescriptorName= gives them.
const (
	FDNameHTTP    = "http"     // TCP, listening: scripts, artifacts, the API
	FDNameTFTP    = "tftp"     // UDP, usually port 69
	FDNameDHCP    = "dhcp"     // UDP port 67
	FDNameDHCPPXE = "dhcp-pxe" // UDP port 4011, proxy mode
)

// Environment of the protocol, unset once read.
const (
	envListenPID   = "LISTEN_PID"
	envListenFDs   = "LISTEN_FDS"
	envListenNames = "LISTEN_FDNAMES"
)

// listenFDsStart is SD_LISTEN_FDS_START: the first inherited descriptor.
const listenFDsStart = 3

// maxListenFDs bounds LISTEN_FDS: stagehand serves on four sockets at
// most, so anything near this is a misconfiguration, not a request.
const maxListenFDs = 16

// Inherited are the sockets a service manager passed; any may be nil,
// and Listen binds what is missing. They are the caller's until given
// to Listen, which owns them from then on.
type Inherited struct {
	HTTP    net.Listener
	TFTP    net.PacketConn
	DHCP    net.PacketConn // port 67
	DHCPPXE net.PacketConn // port 4011
}

// InheritedFromEnv takes the sockets passed by socket activation. Without
// LISTEN_FDS, or with a LISTEN_PID other than ours (the environment of an
// activated parent), there are none and it returns a zero Inherited. It
// unsets LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES in every case, so no
// child process mistakes them for its own, and marks the descriptors
// close-on-exec.
//
// A socket is known by its name; one named otherwise (systemd's default
// is the socket unit's name) is known by its kind and port: a listening
// TCP socket is HTTP, UDP 67 is DHCP, UDP 4011 proxyDHCP, other UDP is
// TFTP. A socket of the wrong kind for its name, two for one role, or a
// descriptor that is no socket is an error naming the descriptor.
func InheritedFromEnv() (Inherited, error) {
	defer func() {
		os.Unsetenv(envListenPID)
		os.Unsetenv(envListenFDs)
		os.Unsetenv(envListenNames)
	}()
	return inherit(os.Getpid(), os.Getenv, listenFDsStart)
}

// inherit is InheritedFromEnv for a given pid, environment and first
// descriptor, so tests can hand it descriptors of their own.
func inherit(pid int, getenv func(string) string, first int) (Inherited, error) {
	fds, names, err := activationEnv(pid, getenv)
	if err != nil || fds == 0 {
		return Inherited{}, err
	}
	var in Inherited
	for i := range fds {
		syscall.CloseOnExec(first + i) // as sd_listen_fds: never passed on by accident
	}
	for i := range fds {
		if err := in.take(first+i, names[i]); err != nil {
			in.Close()
			return Inherited{}, err
		}
	}
	return in, nil
}

// activationEnv reads LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES: the
// number of descriptors meant for pid and a name for each ("" when
// unnamed).
func activationEnv(pid int, getenv func(string) string) (int, []string, error) {
	fdsEnv, pidEnv := getenv(envListenFDs), getenv(envListenPID)
	if fdsEnv == "" || pidEnv == "" {
		return 0, nil, nil // as sd_listen_fds: nothing passed to us
	}
	p, err := strconv.Atoi(pidEnv)
	if err != nil || p < 1 {
		return 0, nil, fmt.Errorf("socket activation: LISTEN_PID %q is not a process ID", pidEnv)
	}
	if p != pid {
		return 0, nil, nil // meant for another process, whose environment we inherited
	}
	n, err := strconv.Atoi(fdsEnv)
	if err != nil || n < 0 || n > maxListenFDs {
		return 0, nil, fmt.Errorf("socket activation: LISTEN_FDS %q: want a count of 0-%d descriptors", fdsEnv, maxListenFDs)
	}
	names := make([]string, n)
	if raw := getenv(envListenNames); raw != "" {
		given := strings.Split(raw, ":")
		if len(given) != n {
			return 0, nil, fmt.Errorf("socket activation: LISTEN_FDNAMES %q names %d descriptors, LISTEN_FDS passes %d", raw, len(given), n)
		}
		copy(names, given)
	}
	return n, names, nil
}

// sockKind is what an inherited descriptor turned out to be.
type sockKind struct {
	stream    bool // SOCK_STREAM (else SOCK_DGRAM)
	listening bool
	port      int
}

func (k sockKind) String() string {
	switch {
	case k.stream && k.listening:
		return fmt.Sprintf("a listening TCP socket on port %d", k.port)
	case k.stream:
		return fmt.Sprintf("a TCP socket on port %d that is not listening", k.port)
	}
	return fmt.Sprintf("a UDP socket on port %d", k.port)
}

// inspect asks the kernel what fd is: an IP socket, of which type, on
// which port.
func inspect(fd int) (sockKind, error) {
	typ, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TYPE)
	if errors.Is(err, syscall.ENOTSOCK) {
		return sockKind{}, errors.New("not a socket")
	}
	if err != nil {
		return sockKind{}, err
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		return sockKind{}, err
	}
	var k sockKind
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		k.port = a.Port
	case *syscall.SockaddrInet6:
		k.port = a.Port
	default:
		return sockKind{}, errors.New("not an IPv4 or IPv6 socket")
	}
	switch typ {
	case syscall.SOCK_STREAM:
		k.stream = true
		acc, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN)
		k.listening = err == nil && acc == 1
	case syscall.SOCK_DGRAM:
	default:
		return sockKind{}, fmt.Errorf("a socket of type %d, neither stream nor datagram", typ)
	}
	return k, nil
}

// role is the name a socket serves as: its own if it has a known one,
// else the one its kind and port say.
func role(name string, k sockKind) string {
	switch name {
	case FDNameHTTP, FDNameTFTP, FDNameDHCP, FDNameDHCPPXE:
		return name
	}
	switch {
	case k.stream:
		return FDNameHTTP
	case k.port == 67:
		return FDNameDHCP
	case k.port == 4011:
		return FDNameDHCPPXE
	}
	return FDNameTFTP
}

// take wraps descriptor fd, named name, into the role it serves and
// closes fd (the net package serves on its own dup). A descriptor that
// is not a socket is left alone: it may be anything of ours, and closing
// it is not ours to do.
func (in *Inherited) take(fd int, name string) error {
	label := fmt.Sprintf("socket activation: fd %d", fd)
	if name != "" {
		label += fmt.Sprintf(" (%q)", name)
	}
	k, err := inspect(fd)
	if err != nil {
		return fmt.Errorf("%s: %w", label, err)
	}
	f := os.NewFile(uintptr(fd), "LISTEN_FDS "+name)
	defer f.Close()
	r := role(name, k)
	if r == FDNameHTTP {
		if !k.stream || !k.listening {
			return fmt.Errorf("%s: %s wants a listening TCP socket, got %s", label, r, k)
		}
		if in.HTTP != nil {
			return fmt.Errorf("%s: a second %s socket", label, r)
		}
		in.HTTP, err = net.FileListener(f)
		return wrapErr(label, err)
	}
	if k.stream {
		return fmt.Errorf("%s: %s wants a UDP socket, got %s", label, r, k)
	}
	slot := map[string]*net.PacketConn{FDNameTFTP: &in.TFTP, FDNameDHCP: &in.DHCP, FDNameDHCPPXE: &in.DHCPPXE}[r]
	if *slot != nil {
		return fmt.Errorf("%s: a second %s socket", label, r)
	}
	*slot, err = net.FilePacketConn(f)
	return wrapErr(label, err)
}

func wrapErr(label string, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", label, err)
	}
	return nil
}

// HTTPPort is the inherited HTTP socket's port, 0 without one.
func (in Inherited) HTTPPort() int {
	if in.HTTP == nil {
		return 0
	}
	if a, ok := in.HTTP.Addr().(*net.TCPAddr); ok {
		return a.Port
	}
	return 0
}

// TFTPPort is the inherited TFTP socket's port, 0 without one.
func (in Inherited) TFTPPort() int {
	if in.TFTP == nil {
		return 0
	}
	if a, ok := in.TFTP.LocalAddr().(*net.UDPAddr); ok {
		return a.Port
	}
	return 0
}

// Close closes every inherited socket that is set.
func (in Inherited) Close() {
	Listeners{HTTP: in.HTTP, TFTP: in.TFTP, DHCP: in.dhcp()}.Close()
}

func (in Inherited) dhcp() []net.PacketConn {
	var cs []net.PacketConn
	for _, c := range []net.PacketConn{in.DHCP, in.DHCPPXE} {
		if c != nil {
			cs = append(cs, c)
		}
	}
	return cs
}
