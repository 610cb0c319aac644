package lab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Process is a command started in a namespace by Start.
type Process struct {
	LogPath string // combined stdout and stderr

	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start runs name with args inside namespace ns in the background, stdout
// and stderr to a file in t.TempDir() (e.g. `stagehand serve` in an
// end-to-end test). Cleanup sends SIGTERM by PID, SIGKILL after 5 s, and
// logs the output's tail if the test failed.
func Start(t testing.TB, ns, name string, args ...string) *Process {
	t.Helper()
	p := &Process{LogPath: filepath.Join(t.TempDir(), filepath.Base(name)+".log"), done: make(chan struct{})}
	f, err := os.Create(p.LogPath)
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("lab: start %s: %v", name, err)
	}
	f.Close()
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("lab: %s output tail (%s):\n%s", name, p.LogPath, tail(p.Output(), 40))
		}
	})
	return p
}

// Pid is the process's ID. "ip netns exec" execs the command, so it is
// the command's own (and that of whatever the command execs in turn).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Output returns what the process has written so far.
func (p *Process) Output() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

// WaitOutput polls the output until it contains substr, the process exits,
// or timeout passes; it reports whether substr appeared.
func (p *Process) WaitOutput(substr string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if strings.Contains(p.Output(), substr) {
			return true
		}
		select {
		case <-p.done:
			return strings.Contains(p.Output(), substr)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// Stop ends the process group (SIGTERM, then SIGKILL after 5 s) and
// returns the process's exit error, if it had exited by itself with one.
func (p *Process) Stop() error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	return nil
}

// BuildGo compiles the main package pkg (e.g.
// "github.com/stagehand-dev/stagehand/cmd/stagehand") into t.TempDir() and
// returns the binary's path, so an end-to-end test runs the real binary.
func BuildGo(t testing.TB, pkg string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(pkg))
	out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("lab: go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// MainWithStagehand is a TestMain body for packages whose tests drive the
// real binary: it builds ../cmd/stagehand (relative to the test's
// package directory) into a temporary directory, sets *bin to its path,
// runs the tests, removes the build and exits with their status.
func MainWithStagehand(m *testing.M, bin *string) {
	dir, err := os.MkdirTemp("", "stagehand-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	*bin = filepath.Join(dir, "stagehand")
	build := exec.Command("go", "build", "-o", *bin, "../cmd/stagehand")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building stagehand:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
