package faults

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/lab"
)

// socketInode is the kernel's name for the socket behind c, as
// /proc/PID/fd shows it ("socket:[1234]").
func socketInode(t *testing.T, c syscall.Conn) string {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var link string
	if err := rc.Control(func(fd uintptr) { link, err = os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd)) }); err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return link
}

// processSockets is the set of sockets process pid holds.
func processSockets(t *testing.T, pid int) map[string]bool {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, e := range ents {
		if l, err := os.Readlink(dir + "/" + e.Name()); err == nil && strings.HasPrefix(l, "socket:") {
			out[l] = true
		}
	}
	return out
}

// TestSocketActivation: serve started with the harness's sockets (by
// LISTEN_FDS, as systemd's socket unit passes them) serves HTTP and TFTP
// on exactly those sockets, the kernel's own sockets and not new ones
// on the same ports, and after a kill and restart still on them.
func TestSocketActivation(t *testing.T) {
	s := newServer(t)
	s.start()
	for round := range 2 {
		held := processSockets(t, s.Pid())
		for what, c := range map[string]syscall.Conn{"HTTP": s.http, "TFTP": s.tftp} {
			if in := socketInode(t, c); !held[in] {
				t.Fatalf("round %d: the server does not hold the %s socket it was given (%s); it holds %v", round, what, in, held)
			}
		}
		r, err := http.Get(s.url() + "/healthz")
		if err != nil || r.StatusCode != http.StatusOK {
			t.Fatalf("round %d: /healthz on the passed socket: %v %v", round, r, err)
		}
		r.Body.Close()
		b, err := tftpGet(fmt.Sprintf("127.0.0.1:%d", s.tftpPort), "undionly.kpxe", 0, nil)
		if err != nil || string(b) != "ipxe undionly.kpxe" {
			t.Fatalf("round %d: TFTP on the passed socket: %q, %v", round, b, err)
		}
		s.Kill()
		s.start()
	}
}

// TestSocketActivationRefused: a socket of the wrong kind for its name,
// or a --http-port that is not the passed socket's, stops serve at start
// with one error naming what is wrong.
func TestSocketActivationRefused(t *testing.T) {
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	s := newServer(t)
	for _, c := range []struct {
		sock  interface{ File() (*os.File, error) }
		names []string
		args  []string
		want  string
	}{
		{pc, []string{"http"}, nil, `fd 3 ("http"): http wants a listening TCP socket, got a UDP socket on port`},
		{ln, []string{"http"}, []string{"--http-port", fmt.Sprint(port + 1)},
			fmt.Sprintf("--http-port %d, but the socket passed by socket activation is on port %d", port+1, port)},
	} {
		f, err := c.sock.File()
		if err != nil {
			t.Fatal(err)
		}
		args := append([]string{"serve", "--listen-address", "127.0.0.1", "--dhcp-mode", "off", "--tftp-port", "0",
			"--data-dir", s.dataDir, "--ipxe-dir", s.ipxeDir}, c.args...)
		p := lab.StartActivated(t, []*os.File{f}, c.names, binary, args...)
		f.Close()
		select {
		case <-p.Done():
		case <-time.After(15 * time.Second):
			t.Fatalf("serve %v still running with a wrong socket", c.args)
		}
		if p.Err() == nil || !strings.Contains(p.Output(), c.want) {
			t.Errorf("serve %v: %v\n%s\nwant %q", c.args, p.Err(), p.Output(), c.want)
		}
	}
}

// TestSocketActivationSystemd: systemd's own implementation of the
// protocol, systemd-socket-activate, starts serve on the socket it
// opened (in a namespace of the test's own, so the fixed port it needs
// is nobody else's) and serve answers on it: the names, count and pid
// are read the way systemd passes them.
func TestSocketActivationSystemd(t *testing.T) {
	n := lab.NewNet(t, "sdact", "10.98.0.1/24")
	s := newServer(t)
	addr := net.JoinHostPort(n.ServerIP.String(), "8080")
	p := lab.Start(t, n.NS, "systemd-socket-activate", "-l", addr, "--fdname=http",
		binary, "serve", "--listen-address", n.ServerIP.String(), "--dhcp-mode", "off", "--tftp-port", "6969",
		"--data-dir", s.dataDir, "--ipxe-dir", s.ipxeDir, "--log-format", "json")
	// The tool execs serve on the first connection; that one waits in
	// the backlog and is served.
	var status string
	p.WaitReady(t, "answering on "+addr, 15*time.Second, func() bool {
		return lab.InNS(n.NS, func() error {
			c, err := net.DialTimeout("tcp4", addr, time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(c, "GET /healthz HTTP/1.0\r\nHost: %s\r\n\r\n", addr)
			r, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				return err
			}
			r.Body.Close()
			status = r.Status
			return nil
		}) == nil
	})
	if status != "200 OK" {
		t.Fatalf("/healthz on systemd's socket: %q", status)
	}
	if !p.WaitOutput(`"http":"`+addr+`"`, 5*time.Second) {
		t.Fatalf("serve does not say it serves HTTP on %s:\n%s", addr, p.Output())
	}
}
