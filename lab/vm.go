package lab

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// ErrTimeout is returned by Wait when QEMU was ended by its Timeout.
var ErrTimeout = errors.New("lab: vm timed out")

// ErrKernelPanic is returned by Wait when the guest kernel panicked: with
// panic=-1 and -no-reboot that also ends QEMU with status 0.
var ErrKernelPanic = errors.New("lab: guest kernel panic")

// VM is a QEMU process started by StartVM.
type VM struct {
	MAC string
	Tap string

	serial string
	cmd    *exec.Cmd
	done   chan struct{}
	err    error // QEMU's exit, valid after done
	killed atomic.Bool
}

var vmSeq atomic.Int32

// StartVM starts a QEMU VM in n's namespace on a new tap, in the
// background. Cleanup kills it by PID and, if the test failed, logs the
// tail of its serial console.
func StartVM(t testing.TB, n *Net, opts VMOptions) *VM {
	t.Helper()
	opts = opts.withDefaults()
	if opts.MAC == "" {
		opts.MAC = RandomMAC()
	}
	if err := opts.validate(); err != nil {
		t.Fatalf("lab: StartVM: %v", err)
	}
	if _, err := exec.LookPath(QEMU); err != nil {
		t.Fatalf("lab: %s not found (apt-get install qemu-system-x86 ipxe-qemu ovmf): %v", QEMU, err)
	}
	dir := t.TempDir()
	c := qemuConfig{
		Opts:    opts,
		Tap:     n.AddTap("tap" + strconv.Itoa(int(vmSeq.Add(1)))),
		Serial:  filepath.Join(dir, "serial.log"),
		Timeout: opts.Timeout,
	}
	if opts.Firmware == UEFI {
		c.VarsFD = filepath.Join(dir, "OVMF_VARS.fd")
		if err := copyFile(OVMFVars, c.VarsFD); err != nil {
			t.Fatalf("lab: OVMF vars (apt-get install ovmf): %v", err)
		}
	}
	v := &VM{MAC: opts.MAC, Tap: c.Tap, serial: c.Serial, done: make(chan struct{})}
	// Created up front so Log and WaitFor work before QEMU opens it.
	if err := os.WriteFile(v.serial, nil, 0o644); err != nil {
		t.Fatalf("lab: %v", err)
	}
	args := append([]string{"netns", "exec", n.NS}, qemuArgs(c)...)
	v.cmd = exec.Command("ip", args...)
	v.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr strings.Builder
	v.cmd.Stdout = &stderr
	v.cmd.Stderr = &stderr
	if err := v.cmd.Start(); err != nil {
		t.Fatalf("lab: start qemu: %v", err)
	}
	t.Logf("lab: vm %s (%s, mac %s) on %s: %s", c.Tap, opts.Firmware, opts.MAC, n.NS, strings.Join(args[3:], " "))
	go func() {
		err := v.cmd.Wait()
		var ee *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee) && ee.ExitCode() == 124:
			err = ErrTimeout
		default:
			err = fmt.Errorf("lab: qemu: %w: %s", err, strings.TrimSpace(stderr.String()))
		}
		v.err = err
		close(v.done)
	}()
	t.Cleanup(func() {
		v.Kill()
		if t.Failed() {
			t.Logf("lab: serial console tail of %s (%s):\n%s", v.Tap, v.serial, Tail(v.Log(), 40))
		}
	})
	return v
}

// Log returns the serial console output so far.
func (v *VM) Log() string {
	b, err := os.ReadFile(v.serial)
	if err != nil {
		return fmt.Sprintf("(read %s: %v)", v.serial, err)
	}
	return string(b)
}

// LogPath returns the serial console log file.
func (v *VM) LogPath() string { return v.serial }

// WaitFor polls the serial console until the regular expression pattern
// matches, QEMU exits without it having matched, or ctx ends.
func (v *VM) WaitFor(ctx context.Context, pattern string) error {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return err
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if re.MatchString(v.Log()) {
			return nil
		}
		select {
		case <-v.done:
			if re.MatchString(v.Log()) {
				return nil
			}
			return fmt.Errorf("lab: vm %s exited (%v) before %q appeared", v.Tap, v.err, pattern)
		case <-ctx.Done():
			return fmt.Errorf("lab: waiting for %q on vm %s: %w", pattern, v.Tap, ctx.Err())
		case <-tick.C:
		}
	}
}

// Wait waits for QEMU to exit and returns nil for a clean guest power-off,
// ErrTimeout, ErrKernelPanic, or QEMU's failure. It does not kill the VM
// when ctx ends.
func (v *VM) Wait(ctx context.Context) error {
	select {
	case <-v.done:
	case <-ctx.Done():
		return fmt.Errorf("lab: waiting for vm %s to exit: %w", v.Tap, ctx.Err())
	}
	if v.killed.Load() {
		return errors.New("lab: vm was killed")
	}
	if v.err == nil && strings.Contains(v.Log(), "Kernel panic - not syncing") {
		return ErrKernelPanic
	}
	return v.err
}

// Exited reports whether QEMU has exited.
func (v *VM) Exited() bool {
	select {
	case <-v.done:
		return true
	default:
		return false
	}
}

// Kill ends QEMU (and its timeout wrapper, one process group) and waits for
// it. It is idempotent.
func (v *VM) Kill() {
	if v.Exited() {
		return
	}
	v.killed.Store(true)
	_ = syscall.Kill(-v.cmd.Process.Pid, syscall.SIGKILL)
	<-v.done
}

// RandomMAC returns a random MAC in QEMU's 52:54:00 prefix.
func RandomMAC() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("52:54:00:%02x:%02x:%02x", b[0], b[1], b[2])
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
