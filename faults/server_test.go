package faults

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/inventory"
	"github.com/stagehand-dev/stagehand/lab"
)

var binary string

func TestMain(m *testing.M) { lab.MainWithStagehand(m, &binary) }

// server is one stagehand serve process on loopback; restartable on the
// same data dir and sockets.
type server struct {
	*lab.Process       // the running serve process; a restart replaces it
	t                  *testing.T
	dataDir, ipxeDir   string
	httpPort, tftpPort int
	args               []string // added to serve's flags

	// The harness opens the sockets and passes them to each serve by
	// socket activation, keeping its own copies as systemd's socket unit
	// does: the ports are never free, so no other process can take them
	// between a kill and the restart, and no test picks a port and races
	// to bind it again.
	http    *net.TCPListener
	tftp    *net.UDPConn
	refuser chan struct{} // closed when refuse has stopped; nil while a server runs
}

func newServer(t *testing.T) *server {
	t.Helper()
	s := &server{t: t, dataDir: t.TempDir(), ipxeDir: t.TempDir()}
	for _, f := range []string{"undionly.kpxe", "snponly.efi"} {
		os.WriteFile(filepath.Join(s.ipxeDir, f), []byte("ipxe "+f), 0o644)
	}
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	s.http, s.tftp = ln, pc
	s.httpPort, s.tftpPort = ln.Addr().(*net.TCPAddr).Port, pc.LocalAddr().(*net.UDPAddr).Port
	t.Cleanup(s.release) // registered first, so it runs after every start's Kill
	return s
}

func (s *server) url() string { return fmt.Sprintf("http://127.0.0.1:%d", s.httpPort) }

// start runs stagehand serve on the harness's sockets, with no port
// flags: it serves on the ports of the sockets it was given.
func (s *server) start() {
	s.t.Helper()
	s.stopRefusing()
	args := append([]string{"serve", "--listen-address", "127.0.0.1", "--dhcp-mode", "off",
		"--data-dir", s.dataDir, "--ipxe-dir", s.ipxeDir, "--log-format", "json",
		// Installs here come from loopback; the binding is tested elsewhere.
		"--userdata-ip-binding=false"}, s.args...)
	hf, err := s.http.File()
	if err != nil {
		s.t.Fatal(err)
	}
	tf, err := s.tftp.File()
	if err != nil {
		hf.Close()
		s.t.Fatal(err)
	}
	s.Process = lab.StartActivated(s.t, []*os.File{hf, tf}, []string{"http", "tftp"}, binary, args...)
	hf.Close() // the child has its copies, the harness its listeners
	tf.Close()
	s.t.Cleanup(s.Kill) // runs before lab's graceful Stop: a test's leftover server is killed
	// Bounded: the harness holds the port, so a server that never serves
	// leaves a request waiting in the backlog, not refused.
	c := &http.Client{Timeout: time.Second}
	s.WaitReady(s.t, "up", 15*time.Second, func() bool {
		r, err := c.Get(s.url() + "/healthz")
		if err == nil {
			r.Body.Close()
		}
		return err == nil
	})
}

// Kill ends the server with SIGKILL, as lab.Process.Kill, then refuses
// connections to its port until the next start: a client of a killed
// server is reset, as when nothing held the port, rather than waiting
// in the backlog and being served by the restart (which would commit,
// say, an import the test counts as lost).
func (s *server) Kill() {
	s.Process.Kill()
	if s.refuser != nil {
		return
	}
	done := make(chan struct{})
	s.refuser = done
	s.http.SetDeadline(time.Time{})
	go func() {
		defer close(done)
		for {
			c, err := s.http.AcceptTCP()
			if err != nil {
				return // the deadline set by stopRefusing, or release
			}
			c.SetLinger(0)
			c.Close()
		}
	}()
}

// stopRefusing ends what Kill started, before a server takes the port.
func (s *server) stopRefusing() {
	if s.refuser == nil {
		return
	}
	s.http.SetDeadline(time.Now())
	<-s.refuser
	s.refuser = nil
}

// release closes the harness's copies of the sockets: with the server
// gone too, nothing holds the ports any more.
func (s *server) release() {
	s.stopRefusing()
	s.http.Close()
	s.tftp.Close()
}

// cli runs the stagehand CLI against the server.
func (s *server) cli(args ...string) (string, error) {
	args = append(args, "--server", s.url(), "--data-dir", s.dataDir)
	out, err := exec.Command(binary, args...).CombinedOutput()
	return string(out), err
}

// checkDB checks the database while the server is down: its length
// against its header, bbolt's consistency check over every page; it
// returns the number of hosts and of events.
func (s *server) checkDB() (hosts, events int) {
	s.t.Helper()
	sum, err := inventory.VerifyBackup(filepath.Join(s.dataDir, inventory.DBFile))
	if err != nil {
		s.t.Fatalf("reopen after crash: %v", err)
	}
	return sum.Hosts, sum.Events
}

// addProfile registers a small profile whose artifacts are files of the
// given size.
func (s *server) addProfile(name string, artifactSize int) (kernel string) {
	s.t.Helper()
	dir := s.t.TempDir()
	kernel = filepath.Join(dir, "kernel")
	data := bytes.Repeat([]byte("0123456789abcdef"), artifactSize/16)
	os.WriteFile(kernel, data, 0o644)
	os.WriteFile(filepath.Join(dir, "initrd"), []byte("initrd"), 0o644)
	ud := filepath.Join(dir, "base.yaml")
	os.WriteFile(ud, []byte("stylus:\n  site:\n    paletteEndpoint: api.example.com\n"), 0o644)
	if out, err := s.cli("profile", "add", name, "--kernel", kernel, "--initrd", filepath.Join(dir, "initrd"), "--userdata", ud); err != nil {
		s.t.Fatalf("profile add: %v\n%s", err, out)
	}
	return kernel
}
