package iso9660

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Sizes and limits. A logical sector is always 2048 bytes (ECMA-119 6.1.2);
// the logical block size used to address extents is recorded in the primary
// volume descriptor and may be smaller.
const (
	sectorSize = 2048
	// firstDescriptor is where the volume descriptor set starts (ECMA-119
	// 6.2.1: sectors 0-15 are the System Area, left to boot loaders).
	firstDescriptor = 16
	// maxDescriptors bounds the descriptor set: real images carry a boot
	// record, a primary, a Joliet supplementary, maybe an ISO 9660:1999
	// enhanced one, and a terminator.
	maxDescriptors = 64
	// maxDirSize refuses directory extents larger than any installer needs,
	// so a crafted size cannot make us scan gigabytes of a file as records.
	maxDirSize = 64 << 20
	// maxDepth bounds path resolution (ECMA-119 6.8.2.1 allows 8 levels;
	// Rock Ridge and xorriso allow deeper trees).
	maxDepth = 32
	// maxContinuations bounds the SUSP CE chain followed for one record.
	maxContinuations = 16
	// ceFactor and ceAllowance bound the SUSP continuation bytes read while
	// scanning one directory: real images (long names, symlink targets,
	// ACLs) stay far below 32 times the directory's own size.
	ceFactor    = 32
	ceAllowance = 1 << 20
	// maxNameLen caps a Rock Ridge name assembled from NM entries.
	maxNameLen = 1024
	// maxListEntries caps ReadDir so a directory cannot make us hold
	// millions of entries.
	maxListEntries = 1 << 16
	// readChunk is how much of a directory extent is read per ReadAt.
	readChunk = 16 * sectorSize
)

// ECMA-119 7.2.3 / 7.3.3: "both-byte orders" fields hold a little-endian
// copy followed by a big-endian one. Like the Linux kernel, we read the
// little-endian half: some mastering tools have written a wrong big-endian
// half, never a wrong little-endian one.
func both16(b []byte) uint16 { return binary.LittleEndian.Uint16(b) }
func both32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }

func putBoth16(b []byte, v uint16) {
	binary.LittleEndian.PutUint16(b, v)
	binary.BigEndian.PutUint16(b[2:], v)
}

func putBoth32(b []byte, v uint32) {
	binary.LittleEndian.PutUint32(b, v)
	binary.BigEndian.PutUint32(b[4:], v)
}

// recordTime decodes the 7-byte date of a directory record (ECMA-119
// 9.1.5): years since 1900, month, day, hour, minute, second, and the
// offset from GMT in 15-minute steps. Nonsense yields the zero time rather
// than an error: a bad date must not hide a file.
func recordTime(b []byte) time.Time {
	if len(b) < 7 {
		return time.Time{}
	}
	mon, day, h, m, s := int(b[1]), int(b[2]), int(b[3]), int(b[4]), int(b[5])
	if mon < 1 || mon > 12 || day < 1 || day > 31 || h > 23 || m > 59 || s > 59 {
		return time.Time{}
	}
	off := int(int8(b[6]))
	if off < -48 || off > 52 {
		off = 0
	}
	zone := time.FixedZone("", off*15*60)
	return time.Date(1900+int(b[0]), time.Month(mon), day, h, m, s, 0, zone)
}

func putRecordTime(b []byte, t time.Time) {
	t = t.UTC()
	y := t.Year() - 1900
	if y < 0 {
		y = 0
	}
	if y > 255 {
		y = 255
	}
	b[0] = byte(y)
	b[1] = byte(t.Month())
	b[2] = byte(t.Day())
	b[3] = byte(t.Hour())
	b[4] = byte(t.Minute())
	b[5] = byte(t.Second())
	b[6] = 0
}

// putVolumeTime writes the 17-byte date of a volume descriptor (ECMA-119
// 8.4.26.1): sixteen ASCII digits and a GMT offset byte.
func putVolumeTime(b []byte, t time.Time) {
	t = t.UTC()
	y := t.Year()
	if y < 1 || y > 9999 {
		y = 1970
	}
	copy(b, fmt.Sprintf("%04d%02d%02d%02d%02d%02d00", y, t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second()))
	b[16] = 0
}

// putUnsetVolumeTime writes the "not specified" date: sixteen '0' digits
// and a zero offset (ECMA-119 8.4.26.1).
func putUnsetVolumeTime(b []byte) {
	copy(b, "0000000000000000")
	b[16] = 0
}
