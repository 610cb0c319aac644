package iso9660

import (
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// tool returns the path of an external program the test needs. A missing
// tool fails the test, naming the Debian package that ships it: CI must
// install it, not silently skip the interop check.
func tool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: install the Debian package %q (apt-get install --no-install-recommends %s)", name, pkg, pkg)
	}
	return p
}

// run runs a command and fails the test with its output if it fails.
func run(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %q: %v\nstdout:\n%s\nstderr:\n%s", name, args, err, out.Bytes(), errb.Bytes())
	}
	return out.Bytes()
}

// randomBytes is deterministic per seed, so a failure reproduces.
func randomBytes(seed uint64, n int) []byte {
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 7})
	b := make([]byte, n)
	r.Read(b)
	return b
}

// longName is lower case and longer than any ISO 9660 level allows
// without extensions, so only Rock Ridge or Joliet can carry it.
const longName = "palette-edge-installer-release-notes-for-this-build.txt"

// installerTree writes a source tree laid out like the Palette Edge
// installer ISO, plus nested directories and a long lower-case name, and
// returns the files' contents by path.
func installerTree(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{
		"boot/kernel":        randomBytes(1, 3<<20),
		"boot/initrd":        randomBytes(2, 1<<20+123),
		"rootfs.squashfs":    randomBytes(3, 4<<20+7),
		"EFI/BOOT/grub.cfg":  []byte("set timeout=5\nmenuentry 'Palette' { linux /boot/kernel }\n"),
		"a/b/c/d/e/deep.bin": randomBytes(4, 5000),
		"docs/" + longName:   []byte("notes\n"),
		"empty":              {},
	}
	for p, data := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return files
}

// openFile opens an image file for the test's lifetime.
func openFile(t testing.TB, path string) (*os.File, *Image) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	im, err := Open(f, st.Size())
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	return f, im
}
