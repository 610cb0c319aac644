package iso9660

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

var epoch = time.Unix(0, 0)

// rawImage lays out a hand-made image of total sectors: the primary
// descriptor at 16 with its root directory at sector 18 (one sector), the
// terminator at 17, and the given sectors.
func rawImage(total int, sectors map[int][]byte) []byte {
	img := make([]byte, total*sectorSize)
	pvd := primaryDescriptor("RAW", uint32(total), 1, epoch)
	putBoth32(pvd[156+2:], 18)
	copy(img[16*sectorSize:], pvd)
	copy(img[17*sectorSize:], terminator())
	for s, b := range sectors {
		copy(img[s*sectorSize:], b)
	}
	return img
}

// dirSector is a one-sector directory at sector self: ".", "..", recs.
func dirSector(self uint32, selfSU []byte, recs ...[]byte) []byte {
	sec := make([]byte, sectorSize)
	all := append([][]byte{
		dirRecord([]byte{0}, self, sectorSize, flagDir, epoch, selfSU),
		dirRecord([]byte{1}, 18, sectorSize, flagDir, epoch, nil),
	}, recs...)
	pos := 0
	for _, r := range all {
		pos += copy(sec[pos:], r)
	}
	return sec
}

func fileRec(name string, sector, size uint32, flags byte, su ...byte) []byte {
	return dirRecord([]byte(name), sector, size, flags, epoch, su)
}

// spSU is the root "." System Use that turns SUSP on.
var spSU = susp("SP", []byte{0xBE, 0xEF, 0})

func TestMultiExtent(t *testing.T) {
	data := randomBytes(5, 2*sectorSize+100)
	img := rawImage(30, map[int][]byte{
		18: dirSector(18, nil,
			fileRec("BIG.;1", 20, 2*sectorSize, flagMultiExtent),
			fileRec("BIG.;1", 22, 100, 0),
			fileRec("SMALL.;1", 23, 1, 0)),
		20: data[:2*sectorSize],
		22: data[2*sectorSize:],
	})
	r := bytes.NewReader(img)
	im, err := Open(r, int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	fi, err := im.Stat("/big")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Name != "BIG" || fi.Size != int64(len(data)) || fi.Offset != 20*sectorSize {
		t.Fatalf("Stat(/big) = %+v, want BIG, %d bytes at %d", fi, len(data), 20*sectorSize)
	}
	got, _ := io.ReadAll(fi.Section(r))
	if !bytes.Equal(got, data) {
		t.Error("multi-extent bytes differ")
	}
	list, err := im.ReadDir("/")
	if err != nil || len(list) != 2 || list[0].Name != "BIG" || list[1].Name != "SMALL" {
		t.Errorf("ReadDir(/) = %+v, %v; want BIG and SMALL once each", list, err)
	}
}

// TestMalformed feeds hand-made broken images: each must fail with an
// error that says what is wrong, never panic or read without bound.
func TestMalformed(t *testing.T) {
	ceLoop := make([]byte, 24)
	putBoth32(ceLoop, 25)
	putBoth32(ceLoop[16:], 28)
	valid := func() []byte { return rawImage(20, map[int][]byte{18: dirSector(18, nil, fileRec("F.;1", 19, 5, 0))}) }

	openCases := []struct {
		name string
		img  func() []byte
	}{
		{"too small", func() []byte { return valid()[:17*sectorSize] }},
		{"no standard identifier", func() []byte { b := valid(); b[16*sectorSize+1] = 'X'; return b }},
		{"no terminator", func() []byte {
			b := valid()
			copy(b[17*sectorSize:], b[16*sectorSize:17*sectorSize])
			return b[:18*sectorSize]
		}},
		{"no primary descriptor", func() []byte { b := valid(); b[16*sectorSize] = 0; return b }},
		{"block size 4096", func() []byte { b := valid(); putBoth16(b[16*sectorSize+128:], 4096); return b }},
		{"root extent over 64 MiB", func() []byte { b := valid(); putBoth32(b[16*sectorSize+156+10:], 65<<20); return b }},
		{"root extent past the end", func() []byte { b := valid(); putBoth32(b[16*sectorSize+156+2:], 1000); return b }},
		{"root is not a directory", func() []byte { b := valid(); b[16*sectorSize+156+25] = 0; return b }},
		{"root record length", func() []byte { b := valid(); b[16*sectorSize+156] = 20; return b }},
	}
	for _, c := range openCases {
		t.Run("open/"+c.name, func(t *testing.T) {
			img := c.img()
			_, err := Open(bytes.NewReader(img), int64(len(img)))
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Open = %v, want ErrMalformed", err)
			}
		})
	}

	// Eight 246-byte records fill the sector up to byte 2036, where a
	// record claims 40 bytes of the 12 left.
	var fill [][]byte
	for range 8 {
		fill = append(fill, fileRec("FILL.;1", 19, 1, 0, make([]byte, 206)...))
	}
	crossing := dirSector(26, nil, fill...)
	crossing[2036] = 40

	statCases := []struct {
		name    string
		sectors map[int][]byte
		path    string
		want    error
	}{
		{"directory loop", map[int][]byte{18: dirSector(18, nil, fileRec("LOOP", 18, sectorSize, flagDir))}, "/loop/x", ErrMalformed},
		{"file past the end", map[int][]byte{18: dirSector(18, nil, fileRec("PAST.;1", 5000, 10, 0))}, "/past", ErrMalformed},
		{"subdirectory over 64 MiB", map[int][]byte{18: dirSector(18, nil, fileRec("HUGE", 19, 65<<20, flagDir))}, "/huge/x", ErrMalformed},
		{"subdirectory past the end", map[int][]byte{18: dirSector(18, nil, fileRec("OUT", 900, sectorSize, flagDir))}, "/out/x", ErrMalformed},
		{"record crosses the sector end", map[int][]byte{
			18: dirSector(18, nil, fileRec("BAD", 26, sectorSize, flagDir)),
			26: crossing,
		}, "/bad/x", ErrMalformed},
		{"fragmented multi-extent", map[int][]byte{18: dirSector(18, nil,
			fileRec("FRAG.;1", 20, sectorSize, flagMultiExtent),
			fileRec("FRAG.;1", 24, 10, 0))}, "/frag", ErrFragmented},
		{"multi-extent without final extent", map[int][]byte{18: dirSector(18, nil,
			fileRec("A.;1", 20, sectorSize, flagMultiExtent))}, "/a", ErrMalformed},
		{"multi-extent interrupted", map[int][]byte{18: dirSector(18, nil,
			fileRec("A.;1", 20, sectorSize, flagMultiExtent),
			fileRec("B.;1", 21, 1, 0))}, "/b", ErrMalformed},
		{"SUSP continuation loop", map[int][]byte{
			18: dirSector(18, spSU, fileRec("C.;1", 19, 1, 0, susp("CE", ceLoop)...)),
			25: susp("CE", ceLoop),
		}, "/c", ErrMalformed},
		{"SUSP continuation past a block", map[int][]byte{
			18: dirSector(18, spSU, fileRec("C.;1", 19, 1, 0, susp("CE", func() []byte {
				b := clone(ceLoop)
				putBoth32(b[8:], 2040)
				return b
			}())...)),
		}, "/c", ErrMalformed},
		{"Rock Ridge child link to a file", map[int][]byte{
			18: dirSector(18, spSU, fileRec("L.;1", 19, 1, 0, susp("CL", []byte{19, 0, 0, 0, 0, 0, 0, 19})...)),
		}, "/l", ErrMalformed},
		{"missing", map[int][]byte{18: dirSector(18, nil)}, "/boot/kernel", ErrNotFound},
	}
	for _, c := range statCases {
		t.Run("stat/"+c.name, func(t *testing.T) {
			img := rawImage(30, c.sectors)
			im, err := Open(bytes.NewReader(img), int64(len(img)))
			if err != nil {
				t.Fatal(err)
			}
			_, err = im.Stat(c.path)
			if !errors.Is(err, c.want) {
				t.Fatalf("Stat(%s) = %v, want %v", c.path, err, c.want)
			}
			t.Log(err)
		})
	}
}

// TestContinuationBudget: every record of a two-sector directory points at
// a chain of 15 full-block continuation areas, 30 KiB of reads per record.
// Each record alone is legal; the 58 together exceed the budget.
func TestContinuationBudget(t *testing.T) {
	ce := func(block uint32) []byte {
		d := make([]byte, 24)
		putBoth32(d, block)
		putBoth32(d[16:], sectorSize)
		return susp("CE", d)
	}
	sectors := map[int][]byte{18: dirSector(18, spSU, fileRec("BIG", 20, 2*sectorSize, flagDir))}
	for k := range 14 {
		sectors[40+k] = ce(uint32(40 + k + 1))
	}
	var recs [][]byte
	for range 58 {
		recs = append(recs, fileRec("F.;1", 19, 1, 0, ce(40)...))
	}
	dir := make([]byte, 2*sectorSize)
	copy(dir, dirSector(20, nil, recs[:28]...))
	pos := sectorSize
	for _, r := range recs[28:] {
		pos += copy(dir[pos:], r)
	}
	sectors[20] = dir
	img := rawImage(60, sectors)
	im, err := Open(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = im.ReadDir("/big")
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "times the directory size") {
		t.Fatalf("ReadDir(/big) = %v, want the continuation budget error", err)
	}
	// The same chain under one record is fine.
	sectors[20] = dirSector(20, nil, recs[0])
	img = rawImage(60, sectors)
	im, err = Open(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	if list, err := im.ReadDir("/big"); err != nil || len(list) != 1 {
		t.Fatalf("ReadDir(/big) with one record = %+v, %v", list, err)
	}
}
