package ipxe

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckBinaries(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileBIOS), []byte("kpxe"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, FileEFIFull), 0o755); err != nil {
		t.Fatal(err)
	}

	if err := CheckBinaries(dir, FileBIOS); err != nil {
		t.Fatalf("present binary: %v", err)
	}

	err := CheckBinaries(dir, FileBIOS, FileEFISNPOnly)
	if err == nil {
		t.Fatal("missing snponly.efi not reported")
	}
	msg := err.Error()
	for _, want := range []string{filepath.Join(dir, FileEFISNPOnly), `Debian package "ipxe"`, "apt-get install ipxe", "--ipxe-dir"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	if strings.Contains(msg, FileBIOS) {
		t.Errorf("error %q names the binary that is present", msg)
	}

	err = CheckBinaries(dir, FileEFIFull)
	if err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("directory in place of ipxe.efi: %v", err)
	}

	// Every missing file gets its own line.
	err = CheckBinaries(filepath.Join(dir, "nowhere"), FileBIOS, FileEFISNPOnly)
	if err == nil {
		t.Fatal("empty dir passed")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], FileBIOS) || !strings.Contains(lines[1], FileEFISNPOnly) {
		t.Fatalf("want one line per missing file, got %q", err)
	}
}

func TestLoadBinaries(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "ipxe")
	outside := filepath.Join(root, "boot")
	for _, d := range []string{dir, outside, filepath.Join(dir, "sub")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, FileBIOS), "kpxe")
	write(filepath.Join(outside, FileEFIFull), "efi-full")
	write(filepath.Join(root, "secret"), "secret")
	write(filepath.Join(dir, "sub", "nested.efi"), "nested")
	// Debian ships /usr/lib/ipxe/ipxe.efi as a symlink to /boot/ipxe.efi.
	if err := os.Symlink(filepath.Join(outside, FileEFIFull), filepath.Join(dir, FileEFIFull)); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "gone"), filepath.Join(dir, "dangling.efi")); err != nil {
		t.Fatal(err)
	}

	b, err := LoadBinaries(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 2 {
		t.Fatalf("LoadBinaries = %v, want undionly.kpxe and ipxe.efi only", b)
	}
	for name, want := range map[string]string{FileBIOS: "kpxe", "/" + FileBIOS: "kpxe", FileEFIFull: "efi-full"} {
		f, err := b.Open(name)
		if err != nil {
			t.Fatalf("Open(%q): %v", name, err)
		}
		got, _ := io.ReadAll(f)
		f.Close()
		if string(got) != want {
			t.Errorf("Open(%q) read %q, want %q", name, got, want)
		}
	}
	for _, name := range []string{"", ".", "..", "../secret", "sub", "sub/nested.efi", "dangling.efi", FileEFISNPOnly, "//" + FileBIOS, FileBIOS + "/"} {
		if f, err := b.Open(name); !errors.Is(err, fs.ErrNotExist) {
			if f != nil {
				f.Close()
			}
			t.Errorf("Open(%q) err = %v, want fs.ErrNotExist", name, err)
		}
	}

	if _, err := LoadBinaries(filepath.Join(root, "nope")); err == nil || !strings.Contains(err.Error(), "iPXE directory") {
		t.Fatalf("missing dir: %v", err)
	}
}
