package iso9660

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"
)

// Errors, matched with errors.Is. Every error returned by Stat and ReadDir
// is an *fs.PathError naming the path; Open's errors name the sector.
var (
	// ErrNotFound: no file or directory of that name.
	ErrNotFound = errors.New("no such file or directory")
	// ErrNotDir: a path element before the last one is a regular file.
	ErrNotDir = errors.New("not a directory")
	// ErrIsDir: Stat was asked for a directory, which cannot be served.
	ErrIsDir = errors.New("is a directory")
	// ErrMalformed: the image breaks ECMA-119 in a way we refuse to guess
	// around (lengths past sector ends, extents past the end of the image,
	// directory loops, oversized directories).
	ErrMalformed = errors.New("malformed ISO 9660 image")
	// ErrFragmented: a multi-extent file (ISO 9660 level 3) whose extents
	// are not contiguous, so it has no single byte range in the image.
	ErrFragmented = errors.New("multi-extent file with non-contiguous extents")
)

// Image is an opened ISO 9660 image. It holds no mutable state after Open,
// so it is safe for concurrent use as long as the io.ReaderAt is (an
// *os.File is).
type Image struct {
	r         io.ReaderAt
	size      int64
	blockSize int64
	volumeID  string
	root      dirRef
	rr        bool // Rock Ridge on the primary tree: names come from NM
	rrSkip    int
	joliet    bool // no Rock Ridge, so names come from the Joliet tree
}

// dirRef locates a directory extent.
type dirRef struct {
	block uint32
	size  uint32
}

// File is a file inside the image. Only regular files come out of Stat;
// ReadDir also lists directories, with IsDir set.
type File struct {
	Name    string
	Size    int64
	Offset  int64 // byte offset of the file's data in the image
	ModTime time.Time
	IsDir   bool
}

// Section returns the file's bytes within r, the same reader the image was
// opened from. http.ServeContent serves it with Range support.
func (f File) Section(r io.ReaderAt) *io.SectionReader {
	return io.NewSectionReader(r, f.Offset, f.Size)
}

// Open parses the volume descriptors of the image readable through r (size
// bytes). It reads the descriptor set and the first sector of the root
// directory, nothing else.
func Open(r io.ReaderAt, size int64) (*Image, error) {
	if size < (firstDescriptor+2)*sectorSize {
		return nil, fmt.Errorf("iso9660: open: %w: %d bytes is too small for a volume descriptor set", ErrMalformed, size)
	}
	im := &Image{r: r, size: size}
	var pvd, svd []byte
	buf := make([]byte, sectorSize)
	terminated := false
	for i := 0; i < maxDescriptors && !terminated; i++ {
		sector := int64(firstDescriptor + i)
		if (sector+1)*sectorSize > size {
			break
		}
		if _, err := r.ReadAt(buf, sector*sectorSize); err != nil {
			return nil, fmt.Errorf("iso9660: open: read sector %d: %w", sector, err)
		}
		// ECMA-119 8.1: type, standard identifier "CD001", version.
		if string(buf[1:6]) != "CD001" {
			return nil, fmt.Errorf("iso9660: open: %w: sector %d has no volume descriptor", ErrMalformed, sector)
		}
		switch buf[0] {
		case 1: // primary (8.4)
			if pvd == nil {
				pvd = append([]byte(nil), buf...)
			}
		case 2: // supplementary (8.5); Joliet marks itself with a UCS-2 escape sequence
			if svd == nil && isJoliet(buf[88:120]) {
				svd = append([]byte(nil), buf...)
			}
		case 255: // set terminator (8.3)
			terminated = true
		}
	}
	if pvd == nil {
		return nil, fmt.Errorf("iso9660: open: %w: no primary volume descriptor", ErrMalformed)
	}
	if !terminated {
		return nil, fmt.Errorf("iso9660: open: %w: no volume descriptor set terminator within %d sectors", ErrMalformed, maxDescriptors)
	}
	// ECMA-119 6.1.2: the logical block size is 2^(n+9) and not larger
	// than the sector.
	switch bs := both16(pvd[128:132]); bs {
	case 512, 1024, 2048:
		im.blockSize = int64(bs)
	default:
		return nil, fmt.Errorf("iso9660: open: %w: logical block size %d", ErrMalformed, bs)
	}
	im.volumeID = strings.TrimRight(string(pvd[40:72]), " \x00")

	root, err := im.rootRecord(pvd)
	if err != nil {
		return nil, fmt.Errorf("iso9660: open: primary volume descriptor: %w", err)
	}
	im.root = root
	if err := im.detectRockRidge(); err != nil {
		return nil, fmt.Errorf("iso9660: open: root directory: %w", err)
	}
	if !im.rr && svd != nil {
		// Joliet's tree has long mixed-case names; without Rock Ridge it is
		// the better of the two trees. Its block size is the primary's.
		jroot, err := im.rootRecord(svd)
		if err != nil {
			return nil, fmt.Errorf("iso9660: open: Joliet volume descriptor: %w", err)
		}
		im.root, im.joliet = jroot, true
	}
	return im, nil
}

func isJoliet(esc []byte) bool {
	return esc[0] == '%' && esc[1] == '/' && (esc[2] == '@' || esc[2] == 'C' || esc[2] == 'E')
}

// rootRecord decodes the root directory record embedded in a volume
// descriptor (ECMA-119 8.4.18, 34 bytes at offset 156).
func (im *Image) rootRecord(vd []byte) (dirRef, error) {
	rec, err := parseRecord(vd[156:190])
	if err != nil {
		return dirRef{}, err
	}
	if !rec.isDir() {
		return dirRef{}, fmt.Errorf("%w: root record is not a directory", ErrMalformed)
	}
	return im.dirRef(rec.block+rec.xarLen, rec.size)
}

// dirRef checks a directory extent before anything reads it.
func (im *Image) dirRef(block, size uint32) (dirRef, error) {
	if size > maxDirSize {
		return dirRef{}, fmt.Errorf("%w: directory extent of %d bytes exceeds the %d MiB limit", ErrMalformed, size, maxDirSize>>20)
	}
	if size < 2*minRecordLen {
		return dirRef{}, fmt.Errorf("%w: directory extent of %d bytes cannot hold \".\" and \"..\"", ErrMalformed, size)
	}
	if int64(block)*im.blockSize+int64(size) > im.size {
		return dirRef{}, fmt.Errorf("%w: directory extent at block %d past the end of the image", ErrMalformed, block)
	}
	return dirRef{block: block, size: size}, nil
}

// detectRockRidge looks for the SUSP SP entry in the root's "." record.
func (im *Image) detectRockRidge() error {
	n := int64(sectorSize)
	if int64(im.root.size) < n {
		n = int64(im.root.size)
	}
	buf := make([]byte, n)
	if _, err := im.r.ReadAt(buf, int64(im.root.block)*im.blockSize); err != nil {
		return fmt.Errorf("read block %d: %w", im.root.block, err)
	}
	rec, err := parseRecord(buf)
	if err != nil {
		return err
	}
	im.rrSkip, im.rr = spSkip(rec.sysUse)
	return nil
}

// VolumeID is the volume identifier of the primary volume descriptor
// (ECMA-119 8.4.5), without its space padding: the label blkid reports.
func (im *Image) VolumeID() string { return im.volumeID }

// Stat finds the regular file at an absolute path such as "/boot/kernel".
// Names match case-insensitively, an exact match winning over a case-folded
// one. They are the Rock Ridge names when the image has Rock Ridge, else the
// Joliet names when it has Joliet, else the ISO 9660 names without their
// ";1" version and the trailing "." of names without extension.
func (im *Image) Stat(name string) (File, error) {
	e, err := im.lookup(name)
	if err != nil {
		return File{}, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	if e.dir {
		return File{}, &fs.PathError{Op: "stat", Path: name, Err: ErrIsDir}
	}
	if e.fragmented {
		return File{}, &fs.PathError{Op: "stat", Path: name, Err: ErrFragmented}
	}
	if e.offset+e.size > im.size {
		return File{}, &fs.PathError{Op: "stat", Path: name,
			Err: fmt.Errorf("%w: %d bytes at offset %d run past the end of the %d-byte image", ErrMalformed, e.size, e.offset, im.size)}
	}
	return e.file(), nil
}

// ReadDir lists the directory at an absolute path, sorted by name.
func (im *Image) ReadDir(name string) ([]File, error) {
	d := im.root
	if !isRoot(name) {
		e, err := im.lookup(name)
		if err != nil {
			return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
		}
		if !e.dir {
			return nil, &fs.PathError{Op: "readdir", Path: name, Err: ErrNotDir}
		}
		d = e.ref
	}
	var out []File
	err := im.eachEntry(d, func(e entry) (bool, error) {
		if len(out) == maxListEntries {
			return true, fmt.Errorf("%w: more than %d entries", ErrMalformed, maxListEntries)
		}
		out = append(out, e.file())
		return false, nil
	})
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func isRoot(name string) bool { return path.Clean("/"+name) == "/" }

// lookup resolves an absolute path to its directory entry.
func (im *Image) lookup(name string) (entry, error) {
	if !strings.HasPrefix(name, "/") {
		return entry{}, errors.New("path is not absolute")
	}
	clean := path.Clean(name)
	if clean == "/" {
		return entry{}, ErrIsDir
	}
	parts := strings.Split(clean[1:], "/")
	if len(parts) > maxDepth {
		return entry{}, fmt.Errorf("path deeper than %d levels", maxDepth)
	}
	// A directory whose extent is one of its ancestors' would make any
	// walk endless; real images never have one.
	seen := map[uint32]bool{im.root.block: true}
	d := im.root
	var cur entry
	for i, p := range parts {
		var exact, folded *entry
		err := im.eachEntry(d, func(e entry) (bool, error) {
			if e.name == p {
				exact = &e
				return true, nil
			}
			if folded == nil && strings.EqualFold(e.name, p) {
				folded = &e
			}
			return false, nil
		})
		if err != nil {
			return entry{}, err
		}
		switch {
		case exact != nil:
			cur = *exact
		case folded != nil:
			cur = *folded
		default:
			return entry{}, ErrNotFound
		}
		if i == len(parts)-1 {
			break
		}
		if !cur.dir {
			return entry{}, fmt.Errorf("/%s: %w", strings.Join(parts[:i+1], "/"), ErrNotDir)
		}
		if seen[cur.ref.block] {
			return entry{}, fmt.Errorf("%w: directory /%s loops back to an ancestor", ErrMalformed, strings.Join(parts[:i+1], "/"))
		}
		seen[cur.ref.block] = true
		d = cur.ref
	}
	return cur, nil
}
