package iso9660

import (
	"bytes"
	"fmt"
	"time"
)

// entry is one name in a directory after the records behind it have been
// merged (multi-extent files) and the Rock Ridge entries applied.
type entry struct {
	name       string
	dir        bool
	ref        dirRef // directories only
	offset     int64
	size       int64
	modTime    time.Time
	fragmented bool
}

func (e entry) file() File {
	return File{Name: e.name, Size: e.size, Offset: e.offset, ModTime: e.modTime, IsDir: e.dir}
}

// eachEntry calls fn for the entries of directory d in recorded order,
// until fn stops or fails. It holds at most readChunk bytes of the
// directory at a time.
func (im *Image) eachEntry(d dirRef, fn func(entry) (stop bool, err error)) error {
	start := int64(d.block) * im.blockSize
	end := start + int64(d.size)
	buf := make([]byte, min(int64(readChunk), int64(d.size)))
	var pending *entry // a multi-extent file still collecting extents
	var pendingIdent []byte
	ceBudget := ceFactor*int64(d.size) + ceAllowance
	for off := start; off < end; off += int64(len(buf)) {
		chunk := buf[:min(int64(len(buf)), end-off)]
		if _, err := im.r.ReadAt(chunk, off); err != nil {
			return fmt.Errorf("read directory at byte %d: %w", off, err)
		}
		// ECMA-119 6.8.1.1: records never cross a sector boundary; a zero
		// length byte pads the rest of the sector.
		for s := 0; s < len(chunk); s += sectorSize {
			sec := chunk[s:min(s+sectorSize, len(chunk))]
			for pos := 0; pos < len(sec) && sec[pos] != 0; {
				rec, err := parseRecord(sec[pos:])
				if err != nil {
					return fmt.Errorf("directory record at byte %d: %w", off+int64(s+pos), err)
				}
				pos += rec.length
				if rec.isSelfOrParent() || rec.flags&flagAssociated != 0 {
					continue
				}
				e, skip, err := im.entryOf(rec, &ceBudget)
				if err != nil {
					return fmt.Errorf("directory record at byte %d: %w", off+int64(s+pos-rec.length), err)
				}
				if skip {
					continue
				}
				// ECMA-119 6.5.1 (level 3): a file of several extents is
				// several records with the same identifier, all but the last
				// flagged multi-extent.
				if pending != nil {
					if !bytes.Equal(pendingIdent, rec.ident) {
						return fmt.Errorf("%w: multi-extent file %q ends without its final extent", ErrMalformed, pending.name)
					}
					if pending.offset+pending.size != e.offset || pending.size%im.blockSize != 0 {
						pending.fragmented = true
					}
					pending.size += e.size
					if rec.flags&flagMultiExtent != 0 {
						continue
					}
					e, pending = *pending, nil
				} else if rec.flags&flagMultiExtent != 0 && !e.dir {
					pending, pendingIdent = &e, append([]byte(nil), rec.ident...)
					continue
				}
				stop, err := fn(e)
				if err != nil || stop {
					return err
				}
			}
		}
	}
	if pending != nil {
		return fmt.Errorf("%w: multi-extent file %q ends without its final extent", ErrMalformed, pending.name)
	}
	return nil
}

// entryOf turns one record into an entry. skip reports records that stand
// for nothing visible: a directory that Rock Ridge relocated (RRIP 4.1.5.3)
// is listed where its CL record sits, not in rr_moved.
func (im *Image) entryOf(rec record, ceBudget *int64) (e entry, skip bool, err error) {
	rr, err := im.rockRidge(rec, ceBudget)
	if err != nil {
		return entry{}, false, err
	}
	if rr.relocated {
		return entry{}, true, nil
	}
	switch {
	case rr.hasName:
		e.name = string(rr.name)
	case im.joliet:
		e.name = jolietName(rec.ident)
	default:
		e.name = levelOneName(rec.ident)
	}
	block := int64(rec.block) + int64(rec.xarLen)
	e.offset = block * im.blockSize
	e.size = int64(rec.size)
	e.modTime = rec.recorded
	switch {
	case rr.hasChild:
		ref, err := im.childDir(rr.childLink)
		if err != nil {
			return entry{}, false, fmt.Errorf("Rock Ridge child link of %q: %w", e.name, err)
		}
		e.dir, e.ref = true, ref
		e.offset, e.size = int64(ref.block)*im.blockSize, int64(ref.size)
	case rec.isDir():
		if block > 0xFFFFFFFF {
			return entry{}, false, fmt.Errorf("%w: directory %q at block %d", ErrMalformed, e.name, block)
		}
		ref, err := im.dirRef(uint32(block), rec.size)
		if err != nil {
			return entry{}, false, fmt.Errorf("directory %q: %w", e.name, err)
		}
		e.dir, e.ref = true, ref
	}
	return e, false, nil
}

// childDir finds the size of a relocated directory from its own "."
// record, since the CL entry carries only the block.
func (im *Image) childDir(block uint32) (dirRef, error) {
	off := int64(block) * im.blockSize
	if off+sectorSize > im.size {
		return dirRef{}, fmt.Errorf("%w: block %d past the end of the image", ErrMalformed, block)
	}
	buf := make([]byte, sectorSize)
	if _, err := im.r.ReadAt(buf, off); err != nil {
		return dirRef{}, fmt.Errorf("read block %d: %w", block, err)
	}
	rec, err := parseRecord(buf)
	if err != nil {
		return dirRef{}, err
	}
	if !rec.isDir() || len(rec.ident) != 1 || rec.ident[0] != 0 {
		return dirRef{}, fmt.Errorf("%w: block %d does not start a directory", ErrMalformed, block)
	}
	return im.dirRef(block, rec.size)
}
