//go:build e2e

package lab_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/lab"
)

// TestNamespaceIsolation checks that ListenIn's socket lives in the
// namespace (a client inside it connects, the same address in the test's
// own namespace is not there) and that Start and InNS reach a process
// inside it.
func TestNamespaceIsolation(t *testing.T) {
	t.Parallel()
	n := lab.NewNet(t, "iso", "10.99.0.1/24")

	ln, err := lab.ListenIn(n.NS, "tcp4", "10.99.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "from-go-in-ns")
	}), ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := n.Command(ctx, "busybox", "wget", "-q", "-O-", "http://"+ln.Addr().String()+"/").CombinedOutput()
	if err != nil || string(out) != "from-go-in-ns" {
		t.Fatalf("wget inside the namespace: %v %q", err, out)
	}
	if c, err := (&net.Dialer{Timeout: time.Second}).Dial("tcp4", ln.Addr().String()); err == nil {
		c.Close()
		t.Errorf("the namespace's listener is reachable from the test's own namespace")
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f.txt"), []byte("from-busybox"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := lab.Start(t, n.NS, "busybox", "httpd", "-f", "-vv", "-p", "10.99.0.1:8081", "-h", dir)
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (conn net.Conn, err error) {
			err = lab.InNS(n.NS, func() error {
				conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return conn, err
		},
	}, Timeout: 5 * time.Second}
	var body []byte
	// httpd binds shortly after it starts; on a loaded machine, later.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := client.Get("http://10.99.0.1:8081/f.txt")
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			break
		}
	}
	if string(body) != "from-busybox" {
		t.Fatalf("GET through InNS = %q", body)
	}
	if !p.WaitOutput("f.txt", 5*time.Second) {
		t.Errorf("httpd did not log the request; output %q", p.Output())
	}
	if err := p.Stop(); err != nil {
		t.Errorf("Stop = %v", err)
	}
}

// TestNetCleanup checks that a Net's namespace and the processes in it are
// gone after its test ends.
func TestNetCleanup(t *testing.T) {
	var ns string
	var pid int
	t.Run("inner", func(t *testing.T) {
		n := lab.NewNet(t, "gone", "10.99.0.1/24")
		ns = n.NS
		cmd := n.Command(context.Background(), "sleep", "300")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pid = cmd.Process.Pid
		go cmd.Wait()
	})
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), ns) {
		t.Errorf("namespace %s still listed", ns)
	}
	// The cleanup sent SIGKILL; the Wait above reaps the process, which
	// on a loaded machine can take a while: poll, and count a zombie
	// (killed, not yet reaped) as gone.
	gone := func() bool {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		if err != nil {
			return true
		}
		_, rest, _ := strings.Cut(string(b), ") ")
		return strings.HasPrefix(rest, "Z")
	}
	for deadline := time.Now().Add(10 * time.Second); !gone() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if !gone() {
		t.Errorf("process %d in the namespace survived", pid)
	}
}
