package tftp

import (
	"bytes"
	"encoding/binary"
	"errors"
)

// Opcodes, RFC 1350 section 5 and RFC 2347 (OACK).
const (
	opRRQ   uint16 = 1
	opWRQ   uint16 = 2
	opDATA  uint16 = 3
	opACK   uint16 = 4
	opERROR uint16 = 5
	opOACK  uint16 = 6
)

// errorCode is the TFTP error code of RFC 1350 (0-7) and RFC 2347 (8).
type errorCode uint16

const (
	errUndefined errorCode = 0
	errNotFound  errorCode = 1
	errAccess    errorCode = 2
	errIllegalOp errorCode = 4
	errOptions   errorCode = 8
)

// Bounds on what a request may contain. RFC 2347 section "Packet Formats"
// limits the whole request, options included, to 512 octets; the other
// limits keep what one packet can make us allocate small.
const (
	maxRequestSize = 512
	maxFilenameLen = 255
	maxModeLen     = 16
	maxOptions     = 16
	maxOptionLen   = 64
	// maxErrorMsgLen bounds the message of a client's ERROR that we keep
	// for logs and Transfer.Err.
	maxErrorMsgLen = 128
)

var (
	errShort       = errors.New("packet too short")
	errTooLarge    = errors.New("request larger than 512 octets")
	errNotRequest  = errors.New("not a read or write request")
	errUnterm      = errors.New("field not NUL-terminated")
	errFilename    = errors.New("bad filename")
	errMode        = errors.New("bad mode")
	errOptionCount = errors.New("too many options")
	errOptionLen   = errors.New("option too long")
)

// option is one name/value pair from a request or for an OACK.
type option struct {
	name, value string
}

// request is a parsed RRQ or WRQ.
type request struct {
	op       uint16
	filename string
	mode     string
	options  []option
}

// parseRequest decodes an RRQ or WRQ (RFC 1350 section 5, RFC 2347).
// Names and modes are kept as sent; callers compare them case-insensitively.
// Trailing empty strings are tolerated because some PXE ROMs pad requests
// with NULs; a dangling option name without a value is ignored.
func parseRequest(b []byte) (request, error) {
	var r request
	if len(b) > maxRequestSize {
		return r, errTooLarge
	}
	if len(b) < 2 {
		return r, errShort
	}
	r.op = binary.BigEndian.Uint16(b)
	if r.op != opRRQ && r.op != opWRQ {
		return r, errNotRequest
	}
	rest := b[2:]
	field := func() (string, bool) {
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			return "", false
		}
		s := string(rest[:i])
		rest = rest[i+1:]
		return s, true
	}
	var ok bool
	if r.filename, ok = field(); !ok {
		return r, errUnterm
	}
	if r.filename == "" || len(r.filename) > maxFilenameLen {
		return r, errFilename
	}
	if r.mode, ok = field(); !ok {
		return r, errUnterm
	}
	if r.mode == "" || len(r.mode) > maxModeLen {
		return r, errMode
	}
	for len(rest) > 0 {
		name, ok := field()
		if !ok {
			return r, errUnterm
		}
		if len(rest) == 0 {
			break // dangling name or padding NUL
		}
		value, ok := field()
		if !ok {
			return r, errUnterm
		}
		if name == "" {
			continue
		}
		if len(name) > maxOptionLen || len(value) > maxOptionLen {
			return r, errOptionLen
		}
		if len(r.options) == maxOptions {
			return r, errOptionCount
		}
		r.options = append(r.options, option{name, value})
	}
	return r, nil
}

// reply is what a client sends to a transfer's socket: an ACK or an ERROR.
type reply struct {
	op    uint16
	block uint16    // ACK
	code  errorCode // ERROR
	msg   string    // ERROR, bounded by maxErrorMsgLen
}

// parseReply decodes an ACK or ERROR without allocating for ACKs, which
// arrive once per window on the hot path.
func parseReply(b []byte) (reply, error) {
	var r reply
	if len(b) < 4 {
		return r, errShort
	}
	r.op = binary.BigEndian.Uint16(b)
	switch r.op {
	case opACK:
		r.block = binary.BigEndian.Uint16(b[2:])
	case opERROR:
		r.code = errorCode(binary.BigEndian.Uint16(b[2:]))
		m := b[4:]
		if i := bytes.IndexByte(m, 0); i >= 0 {
			m = m[:i]
		}
		if len(m) > maxErrorMsgLen {
			m = m[:maxErrorMsgLen]
		}
		r.msg = string(m)
	}
	return r, nil
}

// appendError appends an ERROR packet (RFC 1350 section 5).
func appendError(dst []byte, code errorCode, msg string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, opERROR)
	dst = binary.BigEndian.AppendUint16(dst, uint16(code))
	dst = append(dst, msg...)
	return append(dst, 0)
}

// appendOACK appends an OACK packet (RFC 2347).
func appendOACK(dst []byte, opts []option) []byte {
	dst = binary.BigEndian.AppendUint16(dst, opOACK)
	for _, o := range opts {
		dst = append(dst, o.name...)
		dst = append(dst, 0)
		dst = append(dst, o.value...)
		dst = append(dst, 0)
	}
	return dst
}

// putDataHeader writes the 4-byte DATA header in place so the payload can be
// read straight into the same buffer.
func putDataHeader(b []byte, block uint16) {
	binary.BigEndian.PutUint16(b, opDATA)
	binary.BigEndian.PutUint16(b[2:], block)
}
