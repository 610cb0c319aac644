package ipxe

import (
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
