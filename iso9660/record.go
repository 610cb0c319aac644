package iso9660

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf16"
)

// File flags of a directory record (ECMA-119 9.1.6).
const (
	flagHidden      = 1 << 0
	flagDir         = 1 << 1
	flagAssociated  = 1 << 2
	flagMultiExtent = 1 << 7
)

// minRecordLen is a directory record without identifier or system use
// (33 bytes) plus the shortest identifier (1 byte).
const minRecordLen = 34

// record is one decoded directory record (ECMA-119 9.1). ident and sysUse
// alias the buffer it was parsed from.
type record struct {
	length   int
	xarLen   uint32 // extended attribute record, in logical blocks, before the data
	block    uint32 // first logical block of the extent
	size     uint32 // data length in bytes
	recorded time.Time
	flags    byte
	ident    []byte
	sysUse   []byte
}

func (r record) isDir() bool { return r.flags&flagDir != 0 }

// isSelfOrParent reports the "." and ".." records, whose identifiers are
// the single bytes 0x00 and 0x01 (ECMA-119 6.8.2.2).
func (r record) isSelfOrParent() bool {
	return len(r.ident) == 1 && (r.ident[0] == 0 || r.ident[0] == 1)
}

// parseRecord decodes the directory record at the start of b, where b ends
// at the end of the logical sector: a record never continues into the next
// sector (ECMA-119 6.8.1.1). A zero length byte is not a record (it pads a
// sector's tail) and is the caller's business.
func parseRecord(b []byte) (record, error) {
	if len(b) == 0 {
		return record{}, fmt.Errorf("%w: empty directory record", ErrMalformed)
	}
	n := int(b[0])
	switch {
	case n < minRecordLen:
		return record{}, fmt.Errorf("%w: directory record length %d below minimum %d", ErrMalformed, n, minRecordLen)
	case n > len(b):
		return record{}, fmt.Errorf("%w: directory record length %d runs %d bytes past the sector end", ErrMalformed, n, n-len(b))
	}
	idLen := int(b[32])
	if idLen == 0 {
		return record{}, fmt.Errorf("%w: directory record with empty identifier", ErrMalformed)
	}
	if 33+idLen > n {
		return record{}, fmt.Errorf("%w: identifier length %d past record length %d", ErrMalformed, idLen, n)
	}
	// ECMA-119 9.1.12: a padding byte follows an even-length identifier so
	// the System Use area starts on an even offset.
	su := 33 + idLen
	if idLen%2 == 0 {
		su++
	}
	if su > n {
		su = n
	}
	return record{
		length:   n,
		xarLen:   uint32(b[1]),
		block:    both32(b[2:10]),
		size:     both32(b[10:18]),
		recorded: recordTime(b[18:25]),
		flags:    b[25],
		ident:    b[33 : 33+idLen],
		sysUse:   b[su:n],
	}, nil
}

// levelOneName turns a recorded ISO 9660 identifier into a file name:
// "KERNEL.;1" -> "KERNEL", "INITRD.IMG;1" -> "INITRD.IMG". ECMA-119 7.5.1
// always records the separator dot, so a name without extension ends in
// "." before the ";version" suffix; both are presentation, not name.
func levelOneName(ident []byte) string {
	s := string(ident)
	if i := strings.LastIndexByte(s, ';'); i >= 0 && isDigits(s[i+1:]) {
		s = s[:i]
	}
	if len(s) > 1 {
		s = strings.TrimSuffix(s, ".")
	}
	return s
}

// jolietName decodes a Joliet identifier: UCS-2 big-endian (Joliet
// specification, 1995), with the same ";1" version suffix as level 1. Odd
// trailing bytes are dropped rather than refused.
func jolietName(ident []byte) string {
	u := make([]uint16, len(ident)/2)
	for i := range u {
		u[i] = uint16(ident[2*i])<<8 | uint16(ident[2*i+1])
	}
	s := string(utf16.Decode(u))
	if i := strings.LastIndexByte(s, ';'); i >= 0 && isDigits(s[i+1:]) {
		s = s[:i]
	}
	return s
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
