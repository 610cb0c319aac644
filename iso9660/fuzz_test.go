package iso9660

import (
	"bytes"
	"io"
	"os"
	"path"
	"testing"
	"time"
)

// testdata/small.iso was made once with
//
//	xorriso -as mkisofs -R -J -no-pad -V PALETTE -o small.iso SRC
//
// from boot/kernel, boot/initrd, rootfs.squashfs, EFI/BOOT/grub.cfg and
// docs/palette-edge-installer-release-notes.txt, all dated 2025-01-02
// 03:04:05 UTC. It needs no tool to read, so it also guards the reader
// where xorriso is not installed yet.
const smallISO = "testdata/small.iso"

func TestSmallISO(t *testing.T) {
	img, err := os.ReadFile(smallISO)
	if err != nil {
		t.Fatal(err)
	}
	r := bytes.NewReader(img)
	im, err := Open(r, int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	if im.VolumeID() != "PALETTE" || !im.rr {
		t.Errorf("VolumeID %q rock ridge %v", im.VolumeID(), im.rr)
	}
	want := map[string]string{
		"/boot/kernel":       "kernel-bytes\n",
		"/boot/initrd":       "initrd-bytes\n",
		"/rootfs.squashfs":   "squashfs-bytes\n",
		"/EFI/BOOT/grub.cfg": "set timeout=5\n",
		"/docs/palette-edge-installer-release-notes.txt": "notes\n",
	}
	for p, content := range want {
		fi, err := im.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(fi.Section(r))
		if string(got) != content {
			t.Errorf("%s = %q, want %q", p, got, content)
		}
		if !fi.ModTime.Equal(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)) {
			t.Errorf("%s ModTime = %v", p, fi.ModTime)
		}
	}
}

// FuzzOpen opens mutated images and walks their whole tree: whatever the
// bytes, the reader must return errors, never panic, loop or hand out a
// byte range outside the image.
func FuzzOpen(f *testing.F) {
	img, err := os.ReadFile(smallISO)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(img)
	var seed bytes.Buffer
	if err := Write(&seed, "cidata", []WriteFile{{Name: "user-data", Data: []byte("#cloud-config\n")}, {Name: "meta-data", Data: []byte("instance-id: i\n")}}); err != nil {
		f.Fatal(err)
	}
	f.Add(seed.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		im, err := Open(r, int64(len(data)))
		if err != nil {
			return
		}
		budget := 2000
		walkTree(t, im, r, int64(len(data)), "/", 0, &budget)
	})
}

func walkTree(t *testing.T, im *Image, r io.ReaderAt, size int64, dir string, depth int, budget *int) {
	if depth >= maxDepth {
		return
	}
	list, err := im.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range list {
		if *budget--; *budget <= 0 {
			return
		}
		p := path.Join(dir, e.Name)
		if e.IsDir {
			walkTree(t, im, r, size, p, depth+1, budget)
			continue
		}
		fi, err := im.Stat(p)
		if err != nil {
			continue
		}
		if fi.Offset < 0 || fi.Size < 0 || fi.Offset+fi.Size > size {
			t.Fatalf("Stat(%q) = %d bytes at %d, outside the %d-byte image", p, fi.Size, fi.Offset, size)
		}
		if _, err := io.CopyN(io.Discard, fi.Section(r), 4096); err != nil && err != io.EOF {
			t.Fatalf("read %q: %v", p, err)
		}
	}
}
