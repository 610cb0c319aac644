package iso9660

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestOpenRealImages builds installer-like images with xorriso and
// genisoimage and reads every file back through Stat and Section.
func TestOpenRealImages(t *testing.T) {
	xorriso := tool(t, "xorriso", "xorriso")
	genisoimage := tool(t, "genisoimage", "genisoimage")
	src := t.TempDir()
	files := installerTree(t, src)

	cases := []struct {
		name   string
		cmd    string
		args   []string
		rr     bool
		joliet bool
		// level1 maps source paths to the 8.3 names a plain ISO 9660 tree
		// gives them; nil means names survive as they are.
		level1 map[string]string
	}{
		{name: "xorriso -R -J", cmd: xorriso, args: []string{"-as", "mkisofs", "-R", "-J"}, rr: true},
		{name: "genisoimage -R", cmd: genisoimage, args: []string{"-quiet", "-R"}, rr: true},
		{name: "genisoimage -R -J", cmd: genisoimage, args: []string{"-quiet", "-R", "-J"}, rr: true},
		// xorriso's mkisofs emulation writes Rock Ridge unless told not to.
		{name: "xorriso -J only", cmd: xorriso, args: []string{"-as", "mkisofs", "--norock", "-J"}, joliet: true},
		{name: "genisoimage level 1 only", cmd: genisoimage, args: []string{"-quiet"}, level1: level1Names},
		{name: "xorriso level 1 only", cmd: xorriso, args: []string{"-as", "mkisofs", "--norock"}, level1: level1Names},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.iso")
			args := append(slices.Clone(tc.args), "-V", "PALETTE", "-o", out, src)
			run(t, tc.cmd, args...)
			f, im := openFile(t, out)
			if im.VolumeID() != "PALETTE" {
				t.Errorf("VolumeID = %q, want PALETTE", im.VolumeID())
			}
			if im.rr != tc.rr || im.joliet != tc.joliet {
				t.Errorf("rock ridge %v joliet %v, want %v %v", im.rr, im.joliet, tc.rr, tc.joliet)
			}
			for p, want := range files {
				name := "/" + p
				if tc.level1 != nil {
					name = tc.level1[p]
				}
				fi, err := im.Stat(name)
				if err != nil {
					t.Errorf("Stat(%q): %v", name, err)
					continue
				}
				if fi.Size != int64(len(want)) {
					t.Errorf("Stat(%q).Size = %d, want %d", name, fi.Size, len(want))
				}
				if fi.ModTime.IsZero() {
					t.Errorf("Stat(%q).ModTime is zero", name)
				}
				got, err := io.ReadAll(fi.Section(f))
				if err != nil {
					t.Fatalf("read %s: %v", name, err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s: %d bytes read differ from the %d source bytes", name, len(got), len(want))
				}
			}
			checkRandomReads(t, f, im, "/boot/kernel", files["boot/kernel"])

			// Case-insensitive lookup, whatever the tree's case.
			if _, err := im.Stat("/BOOT/Initrd"); err != nil {
				t.Errorf("Stat(/BOOT/Initrd): %v", err)
			}
			boot, err := im.ReadDir("/boot")
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range boot {
				names = append(names, strings.ToLower(e.Name))
			}
			if !slices.Equal(names, []string{"initrd", "kernel"}) {
				t.Errorf("ReadDir(/boot) = %q, want initrd and kernel", names)
			}
			root, err := im.ReadDir("/")
			if err != nil {
				t.Fatal(err)
			}
			dirs := 0
			for _, e := range root {
				if e.IsDir {
					dirs++
				}
			}
			if dirs != 4 || len(root) != 6 {
				t.Errorf("ReadDir(/) = %+v, want 4 directories and 2 files", root)
			}
			if tc.level1 == nil {
				docs, err := im.ReadDir("/docs")
				if err != nil || len(docs) != 1 || docs[0].Name != longName {
					t.Errorf("ReadDir(/docs) = %+v, %v; want %s", docs, err, longName)
				}
			}
			checkPathErrors(t, im)
		})
	}
}

// level1Names are the names installerTree's files get in a plain ISO 9660
// tree: 8.3, upper case, '-' mapped to '_', looked up here in mixed case.
var level1Names = map[string]string{
	"boot/kernel":        "/boot/kernel",
	"boot/initrd":        "/boot/initrd",
	"rootfs.squashfs":    "/ROOTFS.SQU",
	"EFI/BOOT/grub.cfg":  "/efi/boot/GRUB.CFG",
	"a/b/c/d/e/deep.bin": "/A/B/C/D/E/DEEP.BIN",
	"docs/" + longName:   "/docs/PALETTE_.TXT",
	"empty":              "/empty",
}

// checkRandomReads compares ReadAt at random offsets and lengths, the way
// HTTP Range requests read, against the source bytes.
func checkRandomReads(t *testing.T, r io.ReaderAt, im *Image, name string, want []byte) {
	t.Helper()
	fi, err := im.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	sec := fi.Section(r)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		off := rng.Int64N(int64(len(want)))
		n := rng.IntN(70000) + 1
		buf := make([]byte, n)
		got, err := sec.ReadAt(buf, off)
		wantN := min(n, len(want)-int(off))
		if got != wantN || (err != nil && err != io.EOF) {
			t.Fatalf("ReadAt(%d bytes at %d) = %d, %v; want %d", n, off, got, err, wantN)
		}
		if !bytes.Equal(buf[:got], want[off:int(off)+got]) {
			t.Fatalf("ReadAt(%d bytes at %d): bytes differ", n, off)
		}
	}
	// Reading past the end ends the section, not the image.
	if n, err := sec.ReadAt(make([]byte, 10), int64(len(want))); n != 0 || err != io.EOF {
		t.Errorf("ReadAt at the end = %d, %v; want 0, EOF", n, err)
	}
}

func checkPathErrors(t *testing.T, im *Image) {
	t.Helper()
	cases := []struct {
		path string
		want error
	}{
		{"/boot/vmlinuz", ErrNotFound},
		{"/nope/kernel", ErrNotFound},
		{"/boot", ErrIsDir},
		{"/", ErrIsDir},
		{"/boot/kernel/x", ErrNotDir},
	}
	for _, c := range cases {
		_, err := im.Stat(c.path)
		if !errors.Is(err, c.want) {
			t.Errorf("Stat(%q) = %v, want %v", c.path, err, c.want)
			continue
		}
		var pe *fs.PathError
		if !errors.As(err, &pe) || pe.Path != c.path {
			t.Errorf("Stat(%q) error %v does not name the path", c.path, err)
		}
	}
	if _, err := im.Stat("boot/kernel"); err == nil {
		t.Error("Stat of a relative path succeeded")
	}
	if _, err := im.Stat(strings.Repeat("/d", maxDepth+1)); err == nil || !strings.Contains(err.Error(), "deeper") {
		t.Errorf("Stat of a %d-level path = %v, want a depth error", maxDepth+1, err)
	}
	if _, err := im.ReadDir("/boot/kernel"); !errors.Is(err, ErrNotDir) {
		t.Errorf("ReadDir(/boot/kernel) = %v, want ErrNotDir", err)
	}
	if _, err := im.ReadDir("/missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("ReadDir(/missing) = %v, want ErrNotFound", err)
	}
}

// TestDeepRelocation reads a tree deeper than ECMA-119's 8 levels.
// genisoimage moves deep directories to /rr_moved and leaves Rock Ridge CL
// and RE entries behind (RRIP 4.1.5); xorriso records the deep path as is.
func TestDeepRelocation(t *testing.T) {
	src := t.TempDir()
	deep := filepath.Join(src, "r", "1", "2", "3", "4", "5", "6", "7", "8", "9")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	want := randomBytes(9, 9000)
	if err := os.WriteFile(filepath.Join(deep, "leaf.txt"), want, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, cmd, pkg string }{
		{"genisoimage", "genisoimage", "genisoimage"},
		{"xorriso", "xorriso", "xorriso"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "deep.iso")
			args := []string{"-quiet", "-R", "-o", out, src}
			if c.name == "xorriso" {
				args = []string{"-as", "mkisofs", "-R", "-o", out, src}
			}
			run(t, tool(t, c.cmd, c.pkg), args...)
			f, im := openFile(t, out)
			fi, err := im.Stat("/r/1/2/3/4/5/6/7/8/9/leaf.txt")
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(fi.Section(f))
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("leaf.txt: %d bytes, %v; want the %d source bytes", len(got), err, len(want))
			}
			six, err := im.ReadDir("/r/1/2/3/4/5/6")
			if err != nil || len(six) != 1 || six[0].Name != "7" || !six[0].IsDir {
				t.Errorf("ReadDir(/r/1/2/3/4/5/6) = %+v, %v; want directory 7", six, err)
			}
			if c.name == "genisoimage" {
				// The relocated original is hidden from /rr_moved (RE).
				moved, err := im.ReadDir("/rr_moved")
				if err != nil || len(moved) != 0 {
					t.Errorf("ReadDir(/rr_moved) = %+v, %v; want empty", moved, err)
				}
			}
		})
	}
}
