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

// Process is a command started by Start: a server under test (the real
// stagehand binary, dnsmasq's peers, busybox httpd) with its output in a
// file, stopped by PID. One harness for every package that runs a real
// binary (lab, e2e, faults), so each test does not grow its own.
type Process struct {
	LogPath string // combined stdout and stderr

	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start runs name with args in the background, inside namespace ns ("" runs
// it in the test's own namespace), stdout and stderr to a file in
// t.TempDir(). "ip netns exec" execs the command, so the PID is the
// command's own. Cleanup stops it (Stop) and logs the output's tail if the
// test failed.
func Start(t testing.TB, ns, name string, args ...string) *Process {
	t.Helper()
	var cmd *exec.Cmd
	if ns != "" {
		cmd = exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
	} else {
		cmd = exec.Command(name, args...)
	}
	return start(t, name, cmd)
}

// StartActivated is Start for a server that takes its sockets from its
// caller by socket activation (sd_listen_fds(3)), as systemd passes them:
// socks become descriptors 3, 4, ..., named by names in LISTEN_FDNAMES.
// The caller keeps its own copies open, as a socket unit does, so a
// restart serves the same ports and nobody can take them meanwhile.
//
// LISTEN_PID must be the server's own pid, which systemd sets between
// fork and exec; exec.Cmd has no such step, so the command runs as
// sh -c 'LISTEN_PID=$$ exec "$0" "$@"': exec keeps sh's pid, so the
// variable names the server and the server can check it as strictly as
// sd_listen_fds does.
func StartActivated(t testing.TB, socks []*os.File, names []string, name string, args ...string) *Process {
	t.Helper()
	if len(socks) != len(names) {
		t.Fatalf("lab: %d sockets, %d names", len(socks), len(names))
	}
	cmd := exec.Command("sh", append([]string{"-c", `LISTEN_PID=$$ exec "$0" "$@"`, name}, args...)...)
	cmd.ExtraFiles = socks
	cmd.Env = append(os.Environ(), fmt.Sprintf("LISTEN_FDS=%d", len(socks)), "LISTEN_FDNAMES="+strings.Join(names, ":"))
	return start(t, name, cmd)
}

func start(t testing.TB, name string, cmd *exec.Cmd) *Process {
	t.Helper()
	p := &Process{name: filepath.Base(name), done: make(chan struct{}), cmd: cmd}
	p.LogPath = filepath.Join(t.TempDir(), p.name+".log")
	f, err := os.Create(p.LogPath)
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
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
			t.Logf("lab: %s output tail (%s):\n%s", name, p.LogPath, Tail(p.Output(), 40))
		}
	})
	return p
}

// Pid is the process's ID. "ip netns exec" and StartActivated's sh exec
// the command, so it is the command's own (and that of whatever the
// command execs in turn).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Output returns what the process has written so far.
func (p *Process) Output() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

// Done is closed once the process has exited; Err is its exit error then.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the process's exit error; call it only after Done is closed.
func (p *Process) Err() error { return p.err }

// WaitReady polls ready every 50 ms until it reports true. The test fails,
// with the output so far, if the process exits first or timeout passes;
// what says what was awaited ("up", "on port 67").
func (p *Process) WaitReady(t testing.TB, what string, timeout time.Duration, ready func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if ready() {
			return
		}
		select {
		case <-p.done:
			t.Fatalf("lab: %s exited at start: %v\n%s", p.name, p.err, p.Output())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("lab: %s not %s after %v:\n%s", p.name, what, timeout, p.Output())
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

// Signal sends sig to the process (by PID; not its group).
func (p *Process) Signal(sig syscall.Signal) error { return syscall.Kill(p.cmd.Process.Pid, sig) }

// Kill ends the process group with SIGKILL, so no shutdown code runs, and
// waits for the exit.
func (p *Process) Kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// StopWithin sends sig and waits up to d for the exit; past d it kills the
// group and reports false.
func (p *Process) StopWithin(sig syscall.Signal, d time.Duration) bool {
	select {
	case <-p.done:
		return true
	default:
	}
	_ = p.Signal(sig)
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		p.Kill()
		return false
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

// Tail returns the last lines lines of s, without a trailing newline.
func Tail(s string, lines int) string {
	s = strings.TrimRight(s, "\n")
	idx := len(s)
	for i := 0; i < lines; i++ {
		j := strings.LastIndexByte(s[:idx], '\n')
		if j < 0 {
			return s
		}
		idx = j
	}
	return s[idx+1:]
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
