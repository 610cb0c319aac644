package server

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/rs/zerolog"
)

// firstTestFD is where the tests put the descriptors they pass, as a
// service manager puts them at 3: high enough that the test binary's own
// descriptors are below it.
const firstTestFD = 600

type filer interface{ File() (*os.File, error) }

// pass puts a copy of each socket (or file) at firstTestFD, +1, ... as
// a service manager would at 3, 4, ..., and returns the first number.
func pass(t *testing.T, socks ...any) int {
	t.Helper()
	for i, s := range socks {
		var f *os.File
		switch s := s.(type) {
		case *os.File:
			f = s
		case filer:
			var err error
			if f, err = s.File(); err != nil {
				t.Fatal(err)
			}
			defer f.Close()
		}
		if err := syscall.Dup3(int(f.Fd()), firstTestFD+i, syscall.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Close(firstTestFD + i) })
	}
	return firstTestFD
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func isOpen(fd int) bool {
	_, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0)
	return errno != syscall.EBADF
}

func tcp(t *testing.T) *net.TCPListener {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.(*net.TCPListener)
}

func udp(t *testing.T) *net.UDPConn {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.(*net.UDPConn)
}

// TestInheritNamed: two named sockets become HTTP and TFTP, on the very
// sockets passed (a connection to the passed port is accepted by the
// inherited listener), and the passed descriptors are closed after.
func TestInheritNamed(t *testing.T) {
	ln, pc := tcp(t), udp(t)
	first := pass(t, ln, pc)
	in, err := inherit(4242, env(map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "http:tftp"}), first)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if in.HTTPPort() != ln.Addr().(*net.TCPAddr).Port || in.TFTPPort() != pc.LocalAddr().(*net.UDPAddr).Port {
		t.Fatalf("inherited HTTP port %d and TFTP port %d, passed %v and %v", in.HTTPPort(), in.TFTPPort(), ln.Addr(), pc.LocalAddr())
	}
	if in.DHCP != nil || in.DHCPPXE != nil {
		t.Fatal("DHCP sockets from nowhere")
	}
	if isOpen(first) || isOpen(first+1) {
		t.Fatal("the passed descriptors are still open after inherit")
	}
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("hello"))
	c.Close()
	got, err := in.HTTP.Accept()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(got)
	got.Close()
	if string(b) != "hello" {
		t.Fatalf("inherited listener read %q", b)
	}
	if _, err := pc.WriteTo([]byte("tftp"), in.TFTP.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, _, err := in.TFTP.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "tftp" {
		t.Fatalf("inherited TFTP socket read %q, %v", buf[:n], err)
	}
}

// TestInheritUnnamed: without names (or with systemd's default, the
// unit's name), the kind and port decide.
func TestInheritUnnamed(t *testing.T) {
	for _, names := range []string{"", "stagehand.socket:stagehand.socket"} {
		ln, pc := tcp(t), udp(t)
		first := pass(t, pc, ln)
		in, err := inherit(7, env(map[string]string{"LISTEN_PID": "7", "LISTEN_FDS": "2", "LISTEN_FDNAMES": names}), first)
		if err != nil {
			t.Fatalf("names %q: %v", names, err)
		}
		if in.HTTPPort() != ln.Addr().(*net.TCPAddr).Port || in.TFTPPort() != pc.LocalAddr().(*net.UDPAddr).Port {
			t.Errorf("names %q: HTTP port %d, TFTP port %d; passed %v, %v", names, in.HTTPPort(), in.TFTPPort(), ln.Addr(), pc.LocalAddr())
		}
		in.Close()
	}
	for _, c := range []struct {
		k    sockKind
		want string
	}{
		{sockKind{stream: true, listening: true, port: 80}, FDNameHTTP},
		{sockKind{port: 67}, FDNameDHCP},
		{sockKind{port: 4011}, FDNameDHCPPXE},
		{sockKind{port: 69}, FDNameTFTP},
		{sockKind{port: 6969}, FDNameTFTP},
	} {
		if got := role("", c.k); got != c.want {
			t.Errorf("role of %s: %s, want %s", c.k, got, c.want)
		}
	}
	if got := role(FDNameDHCP, sockKind{port: 1067}); got != FDNameDHCP {
		t.Errorf("a socket named dhcp on port 1067 serves as %s", got)
	}
}

// TestInheritNotOurs: descriptors meant for another pid, or passed
// without LISTEN_PID, are left alone, as sd_listen_fds leaves them.
func TestInheritNotOurs(t *testing.T) {
	first := pass(t, tcp(t))
	for _, e := range []map[string]string{
		{"LISTEN_PID": "4243", "LISTEN_FDS": "1"},
		{"LISTEN_FDS": "1"},
		{},
	} {
		in, err := inherit(4242, env(e), first)
		if err != nil || in.HTTP != nil || in.TFTP != nil {
			t.Errorf("%v: %+v, %v; want nothing", e, in, err)
		}
		if !isOpen(first) {
			t.Fatalf("%v: closed a descriptor meant for another process", e)
		}
	}
}

// TestInheritBadEnv: a count or names that do not parse or do not
// agree are errors naming the variable.
func TestInheritBadEnv(t *testing.T) {
	first := pass(t, tcp(t))
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"LISTEN_PID": "1", "LISTEN_FDS": "one"}, `LISTEN_FDS "one"`},
		{map[string]string{"LISTEN_PID": "1", "LISTEN_FDS": "-1"}, `LISTEN_FDS "-1"`},
		{map[string]string{"LISTEN_PID": "1", "LISTEN_FDS": "17"}, `LISTEN_FDS "17": want a count of 0-16`},
		{map[string]string{"LISTEN_PID": "me", "LISTEN_FDS": "1"}, `LISTEN_PID "me" is not a process ID`},
		{map[string]string{"LISTEN_PID": "1", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "http:tftp"}, `LISTEN_FDNAMES "http:tftp" names 2 descriptors, LISTEN_FDS passes 1`},
	} {
		_, err := inherit(1, env(c.env), first)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v; want %q", c.env, err, c.want)
		}
	}
}

// TestInheritWrongKind: a descriptor of the wrong kind for its name, a
// second socket for one role, or no socket at all is an error naming
// the descriptor and what was expected; nothing stays open.
func TestInheritWrongKind(t *testing.T) {
	conn, err := net.Dial("tcp4", tcp(t).Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	file, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	for _, c := range []struct {
		names string
		socks func() []any
		want  string
	}{
		{"http", func() []any { return []any{udp(t)} }, `fd 600 ("http"): http wants a listening TCP socket, got a UDP socket on port`},
		{"tftp", func() []any { return []any{tcp(t)} }, `fd 600 ("tftp"): tftp wants a UDP socket, got a listening TCP socket on port`},
		{"dhcp", func() []any { return []any{tcp(t)} }, `fd 600 ("dhcp"): dhcp wants a UDP socket`},
		{"http", func() []any { return []any{conn.(*net.TCPConn)} }, `fd 600 ("http"): http wants a listening TCP socket, got a TCP socket on port`},
		{"", func() []any { return []any{file} }, "fd 600: not a socket"},
		{"tftp:tftp", func() []any { return []any{udp(t), udp(t)} }, `fd 601 ("tftp"): a second tftp socket`},
		{"http:x", func() []any { return []any{tcp(t), tcp(t)} }, `fd 601 ("x"): a second http socket`},
	} {
		socks := c.socks()
		first := pass(t, socks...)
		e := map[string]string{"LISTEN_PID": "9", "LISTEN_FDS": fmt.Sprint(len(socks)), "LISTEN_FDNAMES": c.names}
		in, err := inherit(9, env(e), first)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v; want %q", c.names, err, c.want)
		}
		if in.HTTP != nil || in.TFTP != nil {
			t.Errorf("%q: sockets returned with the error", c.names)
		}
		for i, s := range socks {
			if _, file := s.(*os.File); isOpen(first+i) != file {
				t.Errorf("%q: fd %d open after the error: %v; want only one that is no socket", c.names, first+i, isOpen(first+i))
			}
		}
	}
}

// TestInheritedFromEnvUnsets: the variables are gone after reading, so a
// child process (an installer's hook, a shell) never sees them.
func TestInheritedFromEnvUnsets(t *testing.T) {
	t.Setenv("LISTEN_PID", fmt.Sprint(os.Getpid()+1))
	t.Setenv("LISTEN_FDS", "1")
	t.Setenv("LISTEN_FDNAMES", "http")
	in, err := InheritedFromEnv()
	if err != nil || in.HTTP != nil {
		t.Fatalf("another pid's sockets: %+v, %v", in, err)
	}
	for _, k := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		if v, ok := os.LookupEnv(k); ok {
			t.Errorf("%s=%q still set", k, v)
		}
	}
}

// TestInheritedListen: inherited sockets are used, the rest bound;
// sockets that do not fit what the server was told are refused, and
// closed.
func TestInheritedListen(t *testing.T) {
	ln := tcp(t)
	port := ln.Addr().(*net.TCPAddr).Port
	first := pass(t, ln)
	in, err := inherit(5, env(map[string]string{"LISTEN_PID": "5", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "http"}), first)
	if err != nil {
		t.Fatal(err)
	}
	lo := netip.MustParseAddr("127.0.0.1")
	ls, err := in.Listen(lo, "lo", port, 0, DHCPOff, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if ls.HTTP != in.HTTP || ls.TFTP == nil || ls.TFTP.LocalAddr().(*net.UDPAddr).Port == 0 {
		t.Fatalf("Listen: HTTP %v (inherited %v), TFTP %v", ls.HTTP.Addr(), in.HTTP.Addr(), ls.TFTP)
	}
	ls.Close()

	for _, c := range []struct {
		in   func() Inherited
		port int
		mode string
		want string
	}{
		{func() Inherited { return Inherited{HTTP: tcp(t)} }, 1, DHCPOff, "the inherited HTTP socket is on port"},
		{func() Inherited { return Inherited{DHCP: udp(t)} }, 1, DHCPOff, "an inherited DHCP socket for port 67, but DHCP mode off does not serve it"},
		{func() Inherited { return Inherited{DHCPPXE: udp(t)} }, 1, DHCPFull, "an inherited DHCP socket for port 4011, but DHCP mode full does not serve it"},
	} {
		in := c.in()
		if _, err := in.Listen(lo, "lo", c.port, 0, c.mode, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Listen: %v; want %q", err, c.want)
		}
		for _, s := range []io.Closer{in.HTTP, in.DHCP, in.DHCPPXE} {
			if s != nil && s.Close() == nil {
				t.Errorf("Listen's error left an inherited socket open")
			}
		}
	}
}
