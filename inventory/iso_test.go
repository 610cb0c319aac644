package inventory

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// buildISO makes an installer image with xorriso, laid out as the
// Palette Edge installer ISO is, and returns its path and file contents.
func buildISO(t *testing.T) (string, map[string][]byte) {
	t.Helper()
	return buildISOSeeded(t, 3)
}

// buildISOSeeded is buildISO with other random contents per seed.
func buildISOSeeded(t *testing.T, seed uint64) (string, map[string][]byte) {
	t.Helper()
	xorriso, err := exec.LookPath("xorriso")
	if err != nil {
		t.Fatalf("xorriso not found (install the Debian package xorriso): %v", err)
	}
	rng := rand.New(rand.NewPCG(seed, 4))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	files := map[string][]byte{
		"boot/kernel":     random(150<<10 + 3 + int(seed)*4096),
		"boot/initrd":     random(90 << 10),
		"rootfs.squashfs": random(3<<20 + 11),
	}
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	for name, b := range files {
		p := filepath.Join(tree, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	iso := filepath.Join(dir, "palette.iso")
	if out, err := exec.Command(xorriso, "-as", "mkisofs", "-R", "-J", "-V", "PALETTE", "-o", iso, tree).CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v\n%s", err, out)
	}
	return iso, files
}

func TestISOProfile(t *testing.T) {
	s := openTestStore(t)
	iso, files := buildISO(t)
	if err := s.PutProfile(Profile{Name: "palette", ISO: iso, UserData: testBaseUserData}); err != nil {
		t.Fatalf("PutProfile: %v", err)
	}
	p, err := s.Profile("palette")
	if err != nil {
		t.Fatal(err)
	}
	if p.Kernel != "/boot/kernel" || p.Initrd != "/boot/initrd" || p.RootFS != "/rootfs.squashfs" ||
		!strings.Contains(p.Cmdline, "root=live:${rootfs_url}") || !strings.Contains(p.Cmdline, "config_url=${config_url}") || p.Local != LocalBootExit {
		t.Fatalf("defaults not filled: %+v", p)
	}
	for which, name := range map[string]string{"kernel": "boot/kernel", "initrd": "boot/initrd", "rootfs": "rootfs.squashfs"} {
		a, err := p.OpenArtifact(which)
		if err != nil {
			t.Fatalf("OpenArtifact(%s): %v", which, err)
		}
		if a.File != nil {
			t.Errorf("%s: a section of the ISO came back as a whole file", which)
		}
		got, err := io.ReadAll(a)
		a.Close()
		if err != nil || a.Size != int64(len(files[name])) || !bytes.Equal(got, files[name]) {
			t.Errorf("%s: %d bytes (Size %d), err %v; want the %d bytes of %s", which, len(got), a.Size, err, len(files[name]), name)
		}
	}

	// Explicit paths are kept; only the missing ones are defaulted.
	if err := s.PutProfile(Profile{Name: "custom", ISO: iso, Kernel: "/BOOT/KERNEL", Cmdline: "console=ttyS0", UserData: testBaseUserData}); err != nil {
		t.Fatalf("PutProfile with a case-folded path: %v", err)
	}
	if c, _ := s.Profile("custom"); c.Kernel != "/BOOT/KERNEL" || c.Initrd != ISOInitrd || c.Cmdline != "console=ttyS0" {
		t.Errorf("custom profile %+v", c)
	}
}

func TestISOProfileRejected(t *testing.T) {
	s := openTestStore(t)
	iso, _ := buildISO(t)
	notISO := artifact(t, "not.iso")
	for _, tc := range []struct {
		name string
		p    Profile
		want []string
	}{
		{"missing kernel", Profile{Name: "a", ISO: iso, Kernel: "/boot/vmlinuz"},
			[]string{"field kernel", "/boot/vmlinuz is not in " + iso, "(/boot/ holds: initrd, kernel)"}},
		{"missing rootfs at the root", Profile{Name: "b", ISO: iso, RootFS: "/live/squashfs.img"},
			[]string{"field rootfs", "/live/squashfs.img is not in"}},
		{"missing root file lists the root", Profile{Name: "c", ISO: iso, RootFS: "/root.img"},
			[]string{"field rootfs", "(/ holds: boot, rootfs.squashfs)"}},
		{"not an ISO", Profile{Name: "d", ISO: notISO}, []string{"field iso", "cannot read the installer image", notISO}},
		{"no such file", Profile{Name: "e", ISO: "/nonexistent/palette.iso"}, []string{"field iso", "cannot read the installer image"}},
		{"relative", Profile{Name: "f", ISO: "palette.iso"}, []string{"field iso", "not an absolute path"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.PutProfile(tc.p)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("PutProfile: %v, want ErrInvalid", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if _, err := s.Profile(tc.p.Name); !errors.Is(err, ErrNotFound) {
				t.Errorf("rejected profile stored: %v", err)
			}
		})
	}
}

// Artifact extents are cached per image; an image rebuilt in place (a new
// inode, size and time) must be parsed afresh, never served from the old
// image's offsets.
func TestISOArtifactImageReplaced(t *testing.T) {
	iso, files := buildISO(t)
	p := Profile{Name: "palette", ISO: iso}
	p.ApplyISODefaults()
	read := func() []byte {
		t.Helper()
		a, err := p.OpenArtifact("kernel")
		if err != nil {
			t.Fatalf("OpenArtifact: %v", err)
		}
		defer a.Close()
		b, err := io.ReadAll(a)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for range 2 { // the second read is served from the cache
		if got := read(); !bytes.Equal(got, files["boot/kernel"]) {
			t.Fatalf("kernel: %d bytes, want the image's %d", len(got), len(files["boot/kernel"]))
		}
	}
	iso2, files2 := buildISOSeeded(t, 9)
	if err := os.Rename(iso2, iso); err != nil {
		t.Fatal(err)
	}
	if got := read(); !bytes.Equal(got, files2["boot/kernel"]) {
		t.Fatalf("after the rebuild: %d bytes, want the new image's %d", len(got), len(files2["boot/kernel"]))
	}
	if _, err := (Profile{Name: "d", ISO: iso, Kernel: "/boot"}).OpenArtifact("kernel"); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("a directory as the kernel: %v", err)
	}
}
