// Package tftptest is a TFTP read client (RFC 1350, 2347, 2348, 2349,
// 7440) for tests, fault injection and load generators: the one client
// the tftp package's tests, the faults suite and the benchmarks share.
// It is not a product client: it exists to drive a server, so it has
// hooks to lose, repeat or stall on purpose, and it checks what a
// careful client checks (the transfer ID, tsize against the bytes
// received).
//
// It does not import the tftp package, so that package's own tests can
// use it.
package tftptest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"
)

// Opcodes (RFC 1350 §5, RFC 2347).
const (
	opRRQ   = 1
	opDATA  = 3
	opACK   = 4
	opERROR = 5
	opOACK  = 6
)

// Option is one RRQ option, sent as given (RFC 2347).
type Option struct{ Name, Value string }

// Client fetches one file per Get. The zero value reads in octet mode with
// no options, lock-step, waiting 5 s per packet and resending 3 times.
// A Client may be reused for one Get after another (its buffer is kept),
// not for two at once.
type Client struct {
	Mode    string        // "" means octet
	Options []Option      // sent in the RRQ in this order
	Local   net.IP        // address to send from; nil: the kernel's choice for the server
	Timeout time.Duration // wait for each packet before resending (default 5 s)
	Retries int           // resends in a row before giving up (default 3)
	// Deadline, when set, ends the transfer once passed: an ERROR goes to
	// the server and Get returns ErrDeadline.
	Deadline time.Time
	// Pace is slept before each ACK of DATA, to keep a transfer in flight.
	Pace time.Duration
	// Buf, when set, receives the data (Result.Data aliases it); a file
	// larger than len(Buf) fails with ErrMismatch. Nil: Data grows.
	Buf []byte
	// Discard keeps no data at all (Result.Data stays nil); OnData still
	// sees every block.
	Discard bool
	// OnData is called with each in-order block's number (from 1) and
	// payload, valid only during the call.
	OnData func(block int64, payload []byte)

	// Hooks for tests of a server's retransmission logic.
	Drop           func(block int64, n int) bool // ignore a DATA as if lost; block is the one expected, n counts DATA received from 1
	DropOACK       int                           // ignore the first DropOACK OACKs
	DupAcks        bool                          // send every ACK twice
	AbortOnOACK    bool                          // answer the OACK with ERROR 8 instead of ACK 0
	StallAfterOACK bool                          // return once the OACK arrived, the socket left open in Result.Conn

	buf []byte // receive buffer, kept across Gets
}

// Result is what a Get saw, filled in as far as the transfer got.
type Result struct {
	Data        []byte            // the file (nil with Discard)
	Size        int               // bytes received in order
	OACK        map[string]string // option names lower-cased; nil without an OACK
	DataPackets int               // DATA packets received, duplicates and drops included
	Resends     int               // packets sent again after a timeout
	Blksize     int               // negotiated (512 without an OACK)
	Window      int               // negotiated (1 without windowsize)
	Server      *net.UDPAddr      // the transfer's TID
	Conn        *net.UDPConn      // open only when StallAfterOACK returned
}

// RemoteError is an ERROR packet from the server.
type RemoteError struct {
	Code uint16
	Msg  string
	From *net.UDPAddr
}

func (e *RemoteError) Error() string { return fmt.Sprintf("tftp error %d: %s", e.Code, e.Msg) }

var (
	// ErrNoAnswer: Retries resends in a row went unanswered.
	ErrNoAnswer = errors.New("tftptest: no answer")
	// ErrDeadline: Client.Deadline passed before the transfer ended.
	ErrDeadline = errors.New("tftptest: deadline passed")
	// ErrMismatch: the server sent what a client must refuse (a bad OACK,
	// more bytes than fit, a size other than its tsize).
	ErrMismatch = errors.New("tftptest: transfer does not match")
)

// RRQ builds a read request for file with opts.
func RRQ(file, mode string, opts ...Option) []byte {
	if mode == "" {
		mode = "octet"
	}
	b := binary.BigEndian.AppendUint16(nil, opRRQ)
	b = append(append(b, file...), 0)
	b = append(append(b, mode...), 0)
	for _, o := range opts {
		b = append(append(b, o.Name...), 0)
		b = append(append(b, o.Value...), 0)
	}
	return b
}

// errorPacket builds ERROR code msg.
func errorPacket(code uint16, msg string) []byte {
	b := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, opERROR), code)
	return append(append(b, msg...), 0)
}
