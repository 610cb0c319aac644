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

// freePort returns a loopback TCP port nobody listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// server is one stagehand serve process on loopback; restartable on the
// same data dir and ports.
type server struct {
	*lab.Process       // the running serve process; a restart replaces it
	t                  *testing.T
	dataDir, ipxeDir   string
	httpPort, tftpPort int
	args               []string // added to serve's flags
}

func newServer(t *testing.T) *server {
	t.Helper()
	s := &server{t: t, dataDir: t.TempDir(), ipxeDir: t.TempDir(), httpPort: freePort(t), tftpPort: freePort(t)}
	for _, f := range []string{"undionly.kpxe", "snponly.efi"} {
		os.WriteFile(filepath.Join(s.ipxeDir, f), []byte("ipxe "+f), 0o644)
	}
	return s
}

func (s *server) url() string { return fmt.Sprintf("http://127.0.0.1:%d", s.httpPort) }

func (s *server) start() {
	s.t.Helper()
	args := append([]string{"serve", "--listen-address", "127.0.0.1", "--dhcp-mode", "off",
		"--http-port", fmt.Sprint(s.httpPort), "--tftp-port", fmt.Sprint(s.tftpPort),
		"--data-dir", s.dataDir, "--ipxe-dir", s.ipxeDir, "--log-format", "json",
		// Installs here come from loopback; the binding is tested elsewhere.
		"--userdata-ip-binding=false"}, s.args...)
	s.Process = lab.Start(s.t, "", binary, args...)
	s.t.Cleanup(s.Kill) // runs before lab's graceful Stop: a test's leftover server is killed
	s.WaitReady(s.t, "up", 15*time.Second, func() bool {
		r, err := http.Get(s.url() + "/healthz")
		if err == nil {
			r.Body.Close()
		}
		return err == nil
	})
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
