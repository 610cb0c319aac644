package tftp

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestCleanName(t *testing.T) {
	cases := []struct {
		in      string
		want    string
		wantErr error
	}{
		{"undionly.kpxe", "undionly.kpxe", nil},
		{"/undionly.kpxe", "undionly.kpxe", nil},
		{"//efi/snponly.efi", "efi/snponly.efi", nil},
		{"a/./b", "a/./b", nil}, // os.Root resolves "." itself
		{"..", "", fs.ErrPermission},
		{"../etc/passwd", "", fs.ErrPermission},
		{"/../etc/passwd", "", fs.ErrPermission},
		{"a/../../b", "", fs.ErrPermission},
		{"a/..", "", fs.ErrPermission},
		{"..foo", "..foo", nil}, // a name, not a parent
		{"a\x00b", "", fs.ErrPermission},
		{"/", "", fs.ErrNotExist},
	}
	for _, tc := range cases {
		got, err := cleanName(tc.in)
		if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) || got != tc.want {
			t.Errorf("cleanName(%q) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestDir(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o600)
	os.MkdirAll(filepath.Join(root, "efi"), 0o755)
	os.WriteFile(filepath.Join(root, "efi", "snponly.efi"), []byte("EFI!"), 0o644)
	os.Symlink("efi/snponly.efi", filepath.Join(root, "alias.efi"))
	os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "abs-out"))
	os.Symlink("../"+filepath.Base(outside)+"/secret", filepath.Join(root, "rel-out"))
	os.Symlink("loop", filepath.Join(root, "loop"))
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name    string
		want    string
		wantErr error
	}{
		{"efi/snponly.efi", "EFI!", nil},
		{"/efi/snponly.efi", "EFI!", nil},
		{"alias.efi", "EFI!", nil}, // symlink inside the root
		{"abs-out", "", fs.ErrPermission},
		{"rel-out", "", fs.ErrPermission},
		{"loop", "", fs.ErrPermission},
		{"efi", "", fs.ErrNotExist},
		{"fifo", "", fs.ErrNotExist}, // and the open did not block
		{"nope", "", fs.ErrNotExist},
		{"../" + filepath.Base(outside) + "/secret", "", fs.ErrPermission},
	}
	for _, tc := range cases {
		f, size, err := Dir(root).Open(tc.name, nil)
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("Open(%q) err = %v, want %v", tc.name, err, tc.wantErr)
			}
			if f != nil {
				f.Close()
			}
			continue
		}
		if err != nil {
			t.Errorf("Open(%q): %v", tc.name, err)
			continue
		}
		b, _ := io.ReadAll(io.NewSectionReader(f, 0, size))
		f.Close()
		if string(b) != tc.want || size != int64(len(tc.want)) {
			t.Errorf("Open(%q) = %q (size %d), want %q", tc.name, b, size, tc.want)
		}
	}

	if _, _, err := Dir(filepath.Join(root, "missing")).Open("f", nil); err == nil {
		t.Error("Open under a missing root succeeded")
	}
}
