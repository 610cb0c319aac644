package iso9660

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// WriteFile is one file for Write, placed in the root directory.
type WriteFile struct {
	Name string
	Data []byte
	// ModTime is recorded for the file; the zero value records the Unix
	// epoch, so that the same input always makes the same bytes (an HTTP
	// layer can then derive an ETag from the content).
	ModTime time.Time
}

// Writer limits.
const (
	// maxWriteName keeps a file's record (33 + 12-byte identifier + PX +
	// NM) within the 255 bytes a record length can express, without a
	// continuation area per file.
	maxWriteName  = 150
	maxWriteFiles = 1 << 12
)

// Layout of a written image, in 2048-byte sectors: 16 zero sectors of
// System Area, the primary volume descriptor, the terminator, the type L
// and type M path tables, the continuation area holding the Rock Ridge ER
// entry, the root directory, then each file's data.
const (
	wPVD       = 16
	wTerm      = 17
	wPathL     = 18
	wPathM     = 19
	wCE        = 20
	wRoot      = 21
	pathTabLen = 10
)

// The RRIP 1.10 extension reference (IEEE P1282 5.5): the identifier Linux,
// libisofs and cloud-init's readers look for, with the registered texts.
const (
	erID  = "RRIP_1991A"
	erDes = "THE ROCK RIDGE INTERCHANGE PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS"
	erSrc = "PLEASE CONTACT DISC PUBLISHER FOR SPECIFICATION SOURCE.  SEE PUBLISHER IDENTIFIER IN PRIMARY VOLUME DESCRIPTOR FOR CONTACT INFORMATION."
)

// POSIX modes for the Rock Ridge PX entries: read-only media.
const (
	modeFile = 0o100444
	modeDir  = 0o040555
)

type plannedFile struct {
	WriteFile
	ident  string // level-1 identifier, "USER_DAT.;1"
	sector uint32
}

// Write writes a minimal ISO 9660 image with the given volume ID and the
// files, flat in the root directory. Names are recorded twice: as ISO 9660
// level-1 identifiers (8.3, upper case, for readers without extensions) and
// as Rock Ridge NM names, so lower-case names such as cloud-init NoCloud's
// "user-data" and "meta-data" survive a Linux mount.
func Write(w io.Writer, volumeID string, files []WriteFile) error {
	if err := checkVolumeID(volumeID); err != nil {
		return fmt.Errorf("iso9660: write: volume ID %q: %w", volumeID, err)
	}
	plan, err := planFiles(files)
	if err != nil {
		return fmt.Errorf("iso9660: write: %w", err)
	}
	volTime := time.Unix(0, 0)
	for _, f := range plan {
		if f.ModTime.After(volTime) {
			volTime = f.ModTime
		}
	}
	root := rootRecords(plan, volTime)
	rootSectors := sectorsFor(root)
	next := uint64(wRoot + rootSectors)
	for i := range plan {
		plan[i].sector = uint32(next)
		next += (uint64(len(plan[i].Data)) + sectorSize - 1) / sectorSize
		if next > math.MaxUint32 {
			return fmt.Errorf("iso9660: write: image exceeds %d sectors", uint64(math.MaxUint32))
		}
	}
	// Sectors are known now; encode the records again with them.
	root = rootRecords(plan, volTime)

	bw := bufio.NewWriterSize(w, 64<<10)
	zero := make([]byte, sectorSize)
	for range firstDescriptor {
		bw.Write(zero)
	}
	bw.Write(primaryDescriptor(volumeID, uint32(next), uint32(rootSectors), volTime))
	bw.Write(terminator())
	bw.Write(pathTable(false))
	bw.Write(pathTable(true))
	bw.Write(continuationArea())
	for _, sec := range packSectors(root, rootSectors) {
		bw.Write(sec)
	}
	for _, f := range plan {
		bw.Write(f.Data)
		if pad := len(f.Data) % sectorSize; pad != 0 {
			bw.Write(zero[:sectorSize-pad])
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("iso9660: write: %w", err)
	}
	return nil
}

func checkVolumeID(id string) error {
	// ECMA-119 8.4.5 asks for d-characters; NoCloud needs the lower-case
	// label "cidata", which genisoimage and xorriso write as given, so we
	// accept printable ASCII.
	if id == "" || len(id) > 32 {
		return fmt.Errorf("must be 1 to 32 bytes")
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x20 || id[i] > 0x7e {
			return fmt.Errorf("byte %d is not printable ASCII", i)
		}
	}
	return nil
}

// planFiles validates the names and gives each a unique level-1
// identifier, sorted as ECMA-119 9.3 orders a directory.
func planFiles(files []WriteFile) ([]plannedFile, error) {
	if len(files) > maxWriteFiles {
		return nil, fmt.Errorf("%d files, more than %d", len(files), maxWriteFiles)
	}
	seen := map[string]bool{}
	used := map[string]bool{}
	plan := make([]plannedFile, 0, len(files))
	for _, f := range files {
		switch {
		case f.Name == "" || f.Name == "." || f.Name == "..":
			return nil, fmt.Errorf("file name %q is not a name", f.Name)
		case len(f.Name) > maxWriteName:
			return nil, fmt.Errorf("file name %q longer than %d bytes", f.Name, maxWriteName)
		case strings.ContainsAny(f.Name, "/\x00"):
			return nil, fmt.Errorf("file name %q contains '/' or NUL", f.Name)
		case !utf8.ValidString(f.Name):
			return nil, fmt.Errorf("file name %q is not UTF-8", f.Name)
		case seen[f.Name]:
			return nil, fmt.Errorf("file name %q given twice", f.Name)
		case uint64(len(f.Data)) > math.MaxUint32:
			return nil, fmt.Errorf("file %q: %d bytes do not fit one extent", f.Name, len(f.Data))
		}
		seen[f.Name] = true
		base, ext := dChars(f.Name)
		ident := base + "." + ext
		for n := 1; used[ident]; n++ {
			suffix := "~" + strconv.Itoa(n)
			ident = base[:min(len(base), 8-len(suffix))] + suffix + "." + ext
		}
		used[ident] = true
		plan = append(plan, plannedFile{WriteFile: f, ident: ident + ";1"})
	}
	sort.Slice(plan, func(i, j int) bool { return identLess(plan[i].ident, plan[j].ident) })
	return plan, nil
}

// dChars maps a name onto an ISO 9660 level-1 name and extension: at most
// 8 and 3 d-characters (A-Z, 0-9, _), ECMA-119 7.4.1 and 10.1.
func dChars(name string) (base, ext string) {
	b, e := name, ""
	if i := strings.LastIndexByte(name, '.'); i > 0 {
		b, e = name[:i], name[i+1:]
	}
	conv := func(s string, n int) string {
		var sb strings.Builder
		for i := 0; i < len(s) && sb.Len() < n; i++ {
			c := s[i]
			switch {
			case c >= 'a' && c <= 'z':
				sb.WriteByte(c - 'a' + 'A')
			case c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_':
				sb.WriteByte(c)
			default:
				sb.WriteByte('_')
			}
		}
		return sb.String()
	}
	base, ext = conv(b, 8), conv(e, 3)
	if base == "" {
		base = "_"
	}
	return base, ext
}

// identLess orders identifiers as ECMA-119 9.3 does: by name, then by
// extension, each padded with spaces, then by version.
func identLess(a, b string) bool {
	an, ae := splitIdent(a)
	bn, be := splitIdent(b)
	if c := padCompare(an, bn); c != 0 {
		return c < 0
	}
	return padCompare(ae, be) < 0
}

func splitIdent(s string) (name, ext string) {
	s, _, _ = strings.Cut(s, ";")
	name, ext, _ = strings.Cut(s, ".")
	return name, ext
}

func padCompare(a, b string) int {
	n := max(len(a), len(b))
	return strings.Compare(a+strings.Repeat(" ", n-len(a)), b+strings.Repeat(" ", n-len(b)))
}

// rootRecords encodes the root directory's records in order: ".", "..",
// then the files.
func rootRecords(plan []plannedFile, t time.Time) [][]byte {
	size := uint32(sectorsFor(nil)) * sectorSize // placeholder, fixed below
	recs := make([][]byte, 0, len(plan)+2)
	// The root's "." record carries SP (SUSP 5.3, required first), the PX
	// of the directory, and a CE pointing at the ER entry, which with its
	// registered texts is too long for a record.
	dot := susp("SP", []byte{0xBE, 0xEF, 0})
	dot = append(dot, px(modeDir, 2)...)
	ce := make([]byte, 24)
	putBoth32(ce[0:], wCE)
	putBoth32(ce[8:], 0)
	putBoth32(ce[16:], uint32(len(erEntry())))
	dot = append(dot, susp("CE", ce)...)
	recs = append(recs, dirRecord([]byte{0}, wRoot, size, flagDir, t, dot))
	recs = append(recs, dirRecord([]byte{1}, wRoot, size, flagDir, t, px(modeDir, 2)))
	for _, f := range plan {
		su := px(modeFile, 1)
		su = append(su, susp("NM", append([]byte{0}, f.Name...))...)
		recs = append(recs, dirRecord([]byte(f.ident), f.sector, uint32(len(f.Data)), 0, fileTime(f.ModTime), su))
	}
	size = uint32(sectorsFor(recs)) * sectorSize
	for _, r := range recs[:2] {
		putBoth32(r[10:18], size)
	}
	return recs
}

func fileTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Unix(0, 0)
	}
	return t
}

// dirRecord encodes one directory record (ECMA-119 9.1).
func dirRecord(ident []byte, sector, size uint32, flags byte, t time.Time, sysUse []byte) []byte {
	n := 33 + len(ident)
	if len(ident)%2 == 0 {
		n++
	}
	n += len(sysUse)
	if n%2 == 1 {
		n++ // keep records at even lengths, as mastering tools do
	}
	r := make([]byte, n)
	r[0] = byte(n)
	putBoth32(r[2:], sector)
	putBoth32(r[10:], size)
	putRecordTime(r[18:25], t)
	r[25] = flags
	putBoth16(r[28:], 1) // volume sequence number
	r[32] = byte(len(ident))
	copy(r[33:], ident)
	su := 33 + len(ident)
	if len(ident)%2 == 0 {
		su++
	}
	copy(r[su:], sysUse)
	return r
}

// susp encodes one SUSP entry, version 1 (IEEE P1281 4.1).
func susp(sig string, data []byte) []byte {
	e := make([]byte, 4+len(data))
	copy(e, sig)
	e[2] = byte(len(e))
	e[3] = 1
	copy(e[4:], data)
	return e
}

// px encodes the RRIP 1.10 POSIX attributes entry (IEEE P1282 4.1.1): mode,
// links, uid and gid, each both-endian; owner root.
func px(mode, links uint32) []byte {
	d := make([]byte, 32)
	putBoth32(d[0:], mode)
	putBoth32(d[8:], links)
	return susp("PX", d)
}

func erEntry() []byte {
	d := []byte{byte(len(erID)), byte(len(erDes)), byte(len(erSrc)), 1}
	d = append(d, erID...)
	d = append(d, erDes...)
	d = append(d, erSrc...)
	return susp("ER", d)
}

func continuationArea() []byte {
	sec := make([]byte, sectorSize)
	copy(sec, erEntry())
	return sec
}

// sectorsFor counts the sectors the records take when packed so that none
// crosses a sector boundary.
func sectorsFor(recs [][]byte) int {
	n, used := 1, 0
	for _, r := range recs {
		if used+len(r) > sectorSize {
			n, used = n+1, 0
		}
		used += len(r)
	}
	return n
}

func packSectors(recs [][]byte, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = make([]byte, sectorSize)
	}
	s, used := 0, 0
	for _, r := range recs {
		if used+len(r) > sectorSize {
			s, used = s+1, 0
		}
		copy(out[s][used:], r)
		used += len(r)
	}
	return out
}

// pathTable encodes the path table (ECMA-119 9.4) of a tree with only the
// root: one 10-byte entry, little-endian in the type L table and big-endian
// in the type M one.
func pathTable(bigEndian bool) []byte {
	sec := make([]byte, sectorSize)
	sec[0] = 1 // length of the directory identifier
	if bigEndian {
		sec[2], sec[3], sec[4], sec[5] = 0, 0, 0, wRoot
		sec[6], sec[7] = 0, 1
	} else {
		sec[2] = wRoot
		sec[6] = 1 // parent directory number: the root is its own parent
	}
	return sec
}

func terminator() []byte {
	sec := make([]byte, sectorSize)
	sec[0] = 255
	copy(sec[1:], "CD001")
	sec[6] = 1
	return sec
}

// primaryDescriptor encodes the primary volume descriptor (ECMA-119 8.4).
func primaryDescriptor(volumeID string, totalSectors, rootSectors uint32, t time.Time) []byte {
	b := make([]byte, sectorSize)
	b[0] = 1
	copy(b[1:], "CD001")
	b[6] = 1
	pad := func(off, n int, s string) {
		copy(b[off:off+n], s+strings.Repeat(" ", n-len(s)))
	}
	pad(8, 32, "")        // system identifier
	pad(40, 32, volumeID) // volume identifier
	putBoth32(b[80:], totalSectors)
	putBoth16(b[120:], 1) // volume set size
	putBoth16(b[124:], 1) // volume sequence number
	putBoth16(b[128:], sectorSize)
	putBoth32(b[132:], pathTabLen)
	b[140] = wPathL // type L path table, little-endian location
	b[151] = wPathM // type M path table, big-endian location
	root := dirRecord([]byte{0}, wRoot, rootSectors*sectorSize, flagDir, t, nil)
	copy(b[156:190], root)
	pad(190, 128, "") // volume set
	pad(318, 128, "") // publisher
	pad(446, 128, "") // data preparer
	pad(574, 128, "STAGEHAND")
	pad(702, 37, "") // copyright file
	pad(739, 37, "") // abstract file
	pad(776, 37, "") // bibliographic file
	putVolumeTime(b[813:], t)
	putVolumeTime(b[830:], t)
	putUnsetVolumeTime(b[847:])
	putUnsetVolumeTime(b[864:])
	b[881] = 1 // file structure version
	return b
}
