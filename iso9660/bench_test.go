package iso9660

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

// benchSize is the file read by the benchmarks: about a kernel plus an
// initrd, or a slice of a live root image.
const benchSize = 64 << 20

// BenchmarkRead compares reading a 64 MiB file out of an ISO through
// Section with reading the same bytes from a plain file: the ISO layer adds
// an offset and nothing else.
//
//	go test -run '^$' -bench Read -benchtime 20x ./iso9660/
func BenchmarkRead(b *testing.B) {
	dir := b.TempDir()
	data := randomBytes(8, benchSize)
	plain := filepath.Join(dir, "rootfs.squashfs")
	if err := os.WriteFile(plain, data, 0o644); err != nil {
		b.Fatal(err)
	}
	isoPath := filepath.Join(dir, "image.iso")
	out, err := os.Create(isoPath)
	if err != nil {
		b.Fatal(err)
	}
	if err := Write(out, "PALETTE", []WriteFile{{Name: "rootfs.squashfs", Data: data}}); err != nil {
		b.Fatal(err)
	}
	if err := out.Close(); err != nil {
		b.Fatal(err)
	}
	data = nil

	buf := make([]byte, 1<<20)
	b.Run("plain-section", func(b *testing.B) {
		f, err := os.Open(plain)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		b.SetBytes(benchSize)
		for b.Loop() {
			readAll(b, io.NewSectionReader(f, 0, benchSize), buf)
		}
	})
	b.Run("plain-read", func(b *testing.B) {
		f, err := os.Open(plain)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		b.SetBytes(benchSize)
		for b.Loop() {
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				b.Fatal(err)
			}
			readAll(b, f, buf)
		}
	})
	b.Run("iso-section", func(b *testing.B) {
		f, err := os.Open(isoPath)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		st, _ := f.Stat()
		im, err := Open(f, st.Size())
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(benchSize)
		for b.Loop() {
			fi, err := im.Stat("/rootfs.squashfs")
			if err != nil {
				b.Fatal(err)
			}
			readAll(b, fi.Section(f), buf)
		}
	})
}

func readAll(b *testing.B, r io.Reader, buf []byte) {
	n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, buf)
	if err != nil || n != benchSize {
		b.Fatalf("read %d bytes, %v", n, err)
	}
}
