package tftp

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// bootFiles copies the iPXE binaries from Debian's ipxe package into a
// fresh root (ipxe.efi there is a symlink to /boot, which Dir would rightly
// refuse to follow) and returns their contents by name. A missing binary is
// replaced by random bytes of the same size so the test still runs.
func bootFiles(t *testing.T) (string, map[string][]byte) {
	t.Helper()
	dir := t.TempDir()
	files := map[string][]byte{}
	for name, size := range map[string]int{"undionly.kpxe": 74213, "ipxe.efi": 850528} {
		b, err := os.ReadFile(filepath.Join("/usr/lib/ipxe", name))
		if err != nil {
			t.Logf("%v: using %d random bytes instead (Debian package ipxe)", err, size)
			files[name] = randomFile(t, dir, name, size)
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		files[name] = b
	}
	return dir, files
}

// lookPath fails the test, naming the Debian package, when a client is missing.
func lookPath(t *testing.T, bin, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(bin)
	if err != nil {
		t.Fatalf("interop client %s not found: install the Debian package %s (%v)", bin, pkg, err)
	}
	return p
}

// TestInterop downloads the boot binaries with real TFTP clients and checks
// the bytes and what the server negotiated with each.
func TestInterop(t *testing.T) {
	root, files := bootFiles(t)
	var log transferLog
	srv := &Server{Handler: Dir(root), Log: testLogger(t), OnTransfer: log.add}
	addr := testServer(t, srv)
	_, port, _ := net.SplitHostPort(addr)

	atftp := lookPath(t, "atftp", "atftp")
	tftpHPA := lookPath(t, "tftp", "tftp-hpa")
	curl := lookPath(t, "curl", "curl")
	busybox := lookPath(t, "busybox", "busybox-static")

	cases := []struct {
		name       string
		args       func(file, out string) []string
		wantBlock  int
		wantWindow int
	}{
		{"atftp", func(f, o string) []string {
			return []string{atftp, "-g", "-r", f, "-l", o, "127.0.0.1", port}
		}, 512, 1},
		{"atftp blksize 1468", func(f, o string) []string {
			return []string{atftp, "--option", "blksize 1468", "-g", "-r", f, "-l", o, "127.0.0.1", port}
		}, 1468, 1},
		{"atftp windowsize 4", func(f, o string) []string {
			return []string{atftp, "--option", "blksize 1468", "--option", "windowsize 4", "-g", "-r", f, "-l", o, "127.0.0.1", port}
		}, 1468, 4},
		{"tftp-hpa", func(f, o string) []string {
			return []string{tftpHPA, "-m", "binary", "127.0.0.1", port, "-c", "get", f, o}
		}, 512, 1},
		{"curl", func(f, o string) []string {
			return []string{curl, "-sS", "-o", o, "tftp://127.0.0.1:" + port + "/" + f}
		}, 512, 1},
		{"curl blksize 1468", func(f, o string) []string {
			return []string{curl, "-sS", "--tftp-blksize", "1468", "-o", o, "tftp://127.0.0.1:" + port + "/" + f}
		}, 1468, 1},
		{"curl no options", func(f, o string) []string {
			return []string{curl, "-sS", "--tftp-no-options", "-o", o, "tftp://127.0.0.1:" + port + "/" + f}
		}, 512, 1},
		{"busybox", func(f, o string) []string {
			return []string{busybox, "tftp", "-g", "-r", f, "-l", o, "127.0.0.1", port}
		}, 512, 1},
		{"busybox blksize 1468", func(f, o string) []string {
			return []string{busybox, "tftp", "-g", "-r", f, "-l", o, "-b", "1468", "127.0.0.1", port}
		}, 1468, 1},
	}
	n := 0
	for _, tc := range cases {
		for name, want := range files {
			t.Run(tc.name+"/"+name, func(t *testing.T) {
				out := filepath.Join(t.TempDir(), "out")
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				args := tc.args(name, out)
				cmd := exec.CommandContext(ctx, args[0], args[1:]...)
				cmd.Dir = t.TempDir()
				output, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, output)
				}
				got, err := os.ReadFile(out)
				if err != nil {
					t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, output)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("%s: got %d bytes, want %d identical bytes\n%s", strings.Join(args, " "), len(got), len(want), output)
				}
			})
			n++
			// The report arrives after the final ACK, which may be after
			// the client exited; wait for it to pair reports with runs.
			tr := log.wait(t, n)[n-1]
			if tr.Err != nil || tr.File != name || tr.BlockSize != tc.wantBlock || tr.WindowSize != tc.wantWindow {
				t.Errorf("%s/%s: server report %+v, want blksize %d windowsize %d", tc.name, name, tr, tc.wantBlock, tc.wantWindow)
			}
		}
	}
	if st := srv.Stats(); st.TransfersOK != uint64(n) || st.TransfersFailed+st.TransfersAborted != 0 {
		t.Errorf("stats = %+v, want %d clean transfers", st, n)
	}
}
