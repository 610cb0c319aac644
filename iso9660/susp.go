package iso9660

import "fmt"

// rockRidge is what stagehand takes from a record's Rock Ridge entries
// (IEEE P1282, RRIP 1.10/1.12): the POSIX name, and the links that undo
// deep-directory relocation.
type rockRidge struct {
	name      []byte
	nameDone  bool
	hasName   bool
	childLink uint32 // CL: this file record stands for the directory at this block
	hasChild  bool
	relocated bool // RE: this directory really lives where a CL points at it
}

// continuation is a SUSP CE entry (IEEE P1281 5.1): more System Use
// entries at block*blockSize+offset, length bytes long.
type continuation struct {
	block, offset, length uint32
}

// spSkip reads the SP entry that SUSP requires at the start of the System
// Use area of the root's "." record (IEEE P1281 5.3). Its presence is how
// a reader knows that System Use areas hold SUSP entries at all; its last
// byte is how many bytes to skip at the start of every other area.
func spSkip(su []byte) (int, bool) {
	if len(su) < 7 || su[0] != 'S' || su[1] != 'P' || su[2] != 7 || su[4] != 0xBE || su[5] != 0xEF {
		return 0, false
	}
	return int(su[6]), true
}

// parseSUSP walks the entries of one System Use area or continuation area
// into rr and returns a CE entry if the area has one. SUSP entries are
// "signature, length, version, data" (IEEE P1281 4.1). A malformed entry
// ends the walk: what was parsed so far stands, as the Linux kernel does,
// because a broken extension must not hide the ISO 9660 file underneath.
func parseSUSP(area []byte, rr *rockRidge) (continuation, bool) {
	var ce continuation
	hasCE := false
	for len(area) >= 4 {
		n := int(area[2])
		if n < 4 || n > len(area) {
			break
		}
		e, data := area[:n], area[4:n]
		area = area[n:]
		switch string(e[:2]) {
		case "ST": // SUSP 5.4: terminator
			return ce, hasCE
		case "CE":
			if len(data) >= 24 {
				ce = continuation{block: both32(data[0:]), offset: both32(data[8:]), length: both32(data[16:])}
				hasCE = true
			}
		case "NM": // RRIP 4.1.4: flags, then a piece of the name
			if len(data) < 1 || rr.nameDone {
				continue
			}
			flags := data[0]
			if flags&(1<<1|1<<2) != 0 { // CURRENT, PARENT: "." and ".."
				continue
			}
			if len(rr.name)+len(data)-1 > maxNameLen {
				rr.nameDone = true
				continue
			}
			rr.name = append(rr.name, data[1:]...)
			rr.hasName = true
			if flags&1 == 0 { // no CONTINUE flag: the name is complete
				rr.nameDone = true
			}
		case "CL": // RRIP 4.1.5.1
			if len(data) >= 8 {
				rr.childLink = both32(data)
				rr.hasChild = true
			}
		case "RE": // RRIP 4.1.5.3
			rr.relocated = true
		}
	}
	return ce, hasCE
}

// rockRidge collects the Rock Ridge entries of rec, following CE
// continuation areas (bounded in number and length, and inside the image).
// budget is what is left of the continuation bytes the directory scan may
// read, so a directory whose every record points at long CE chains costs a
// bounded multiple of its size rather than 16 sectors per record.
func (im *Image) rockRidge(rec record, budget *int64) (rockRidge, error) {
	var rr rockRidge
	if !im.rr || im.rrSkip > len(rec.sysUse) {
		return rr, nil
	}
	ce, more := parseSUSP(rec.sysUse[im.rrSkip:], &rr)
	var buf []byte
	for i := 0; more; i++ {
		if i == maxContinuations {
			return rr, fmt.Errorf("%w: more than %d SUSP continuation areas", ErrMalformed, maxContinuations)
		}
		// SUSP 5.1: a continuation area lies within one logical block.
		if ce.length == 0 || int64(ce.offset)+int64(ce.length) > im.blockSize {
			return rr, fmt.Errorf("%w: SUSP continuation area of %d bytes at offset %d exceeds a block", ErrMalformed, ce.length, ce.offset)
		}
		if *budget -= int64(ce.length); *budget < 0 {
			return rr, fmt.Errorf("%w: SUSP continuation areas exceed %d times the directory size", ErrMalformed, ceFactor)
		}
		off := int64(ce.block)*im.blockSize + int64(ce.offset)
		if off+int64(ce.length) > im.size {
			return rr, fmt.Errorf("%w: SUSP continuation area at block %d past the end of the image", ErrMalformed, ce.block)
		}
		if cap(buf) < int(ce.length) {
			buf = make([]byte, ce.length)
		}
		buf = buf[:ce.length]
		if _, err := im.r.ReadAt(buf, off); err != nil {
			return rr, fmt.Errorf("read SUSP continuation area at block %d: %w", ce.block, err)
		}
		ce, more = parseSUSP(buf, &rr)
	}
	return rr, nil
}
