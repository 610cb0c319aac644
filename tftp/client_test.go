package tftp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// testClient is a small RFC 1350/2347/7440 read client for tests and
// benchmarks. Its hooks let tests lose or duplicate packets on purpose.
type testClient struct {
	mode    string   // "" means octet
	options []option // sent in the RRQ as given
	timeout time.Duration
	retries int
	// drop reports whether to ignore a received DATA packet, as if lost.
	// n counts DATA packets received so far, from 1.
	drop func(block int64, n int) bool
	// dropOACK ignores the first n OACKs.
	dropOACK int
	// dupAcks sends every ACK twice.
	dupAcks bool
	// abortOnOACK answers the OACK with ERROR 8 instead of ACK 0.
	abortOnOACK bool
	// stallAfterOACK stops reading once the OACK arrived and returns.
	stallAfterOACK bool
	// pace is slept before each ACK of DATA, to keep a transfer in flight.
	pace time.Duration
	// onData, when set, is called with the count of in-order blocks
	// received so far.
	onData func(blocks int64)
	// local is the address to send from; nil means the server's.
	local net.IP
}

type clientResult struct {
	data        []byte
	oack        map[string]string
	dataPackets int          // DATA packets received, duplicates and drops included
	server      *net.UDPAddr // the transfer's TID
	conn        *net.UDPConn // open only when stallAfterOACK returned
}

// remoteError is an ERROR packet received by the client.
type remoteError struct {
	code errorCode
	msg  string
	from *net.UDPAddr
}

func (e *remoteError) Error() string { return fmt.Sprintf("tftp error %d: %s", e.code, e.msg) }

func appendRequest(dst []byte, op uint16, file, mode string, opts []option) []byte {
	dst = binary.BigEndian.AppendUint16(dst, op)
	dst = append(append(dst, file...), 0)
	dst = append(append(dst, mode...), 0)
	for _, o := range opts {
		dst = append(append(dst, o.name...), 0)
		dst = append(append(dst, o.value...), 0)
	}
	return dst
}

func appendAck(dst []byte, block uint16) []byte {
	dst = binary.BigEndian.AppendUint16(dst, opACK)
	return binary.BigEndian.AppendUint16(dst, block)
}

// get fetches file from the server at addr.
func (c *testClient) get(addr, file string) (*clientResult, error) {
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	from := raddr.IP
	if c.local != nil {
		from = c.local
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: from})
	if err != nil {
		return nil, err
	}
	res := &clientResult{}
	defer func() {
		if res.conn == nil {
			conn.Close()
		}
	}()
	mode := c.mode
	if mode == "" {
		mode = "octet"
	}
	timeout := c.timeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	retries := c.retries
	if retries == 0 {
		retries = 3
	}
	blksize, window := 512, 1

	last := appendRequest(nil, opRRQ, file, mode, c.options)
	if _, err := conn.WriteToUDP(last, raddr); err != nil {
		return nil, err
	}
	send := func(p []byte) error {
		last = p
		n := 1
		if c.dupAcks {
			n = 2
		}
		for range n {
			if _, err := conn.WriteToUDP(p, res.server); err != nil {
				return err
			}
		}
		return nil
	}
	bufSize := 512
	for _, o := range c.options {
		if strings.EqualFold(o.name, "blksize") {
			if v, err := strconv.Atoi(o.value); err == nil {
				bufSize = max(bufSize, v)
			}
		}
	}
	buf := make([]byte, 4+bufSize+1)
	expected := int64(1)
	inWindow := 0
	oacks := 0
	tries := 0
	for {
		conn.SetReadDeadline(time.Now().Add(timeout))
		n, from, err := conn.ReadFromUDP(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && tries < retries {
				tries++
				to := res.server
				if to == nil {
					to = raddr
				}
				if _, err := conn.WriteToUDP(last, to); err != nil {
					return res, err
				}
				continue
			}
			return res, err
		}
		if n < 4 {
			return res, fmt.Errorf("short packet %x", buf[:n])
		}
		if res.server == nil {
			res.server = from
		} else if from.Port != res.server.Port {
			continue // another TID; RFC 1350 says answer ERROR 5, tests just ignore
		}
		op := binary.BigEndian.Uint16(buf)
		switch op {
		case opERROR:
			return res, &remoteError{errorCode(binary.BigEndian.Uint16(buf[2:])), strings.TrimRight(string(buf[4:n]), "\x00"), from}
		case opOACK:
			oacks++
			if oacks <= c.dropOACK {
				continue
			}
			if res.oack != nil {
				continue // duplicate OACK after we answered it
			}
			res.oack = map[string]string{}
			fields := strings.Split(string(buf[2:n]), "\x00")
			for i := 0; i+1 < len(fields); i += 2 {
				res.oack[strings.ToLower(fields[i])] = fields[i+1]
			}
			if v, ok := res.oack["blksize"]; ok {
				blksize, _ = strconv.Atoi(v)
			}
			if v, ok := res.oack["windowsize"]; ok {
				window, _ = strconv.Atoi(v)
			}
			if c.abortOnOACK {
				_, err := conn.WriteToUDP(appendError(nil, errOptions, "no thanks"), from)
				return res, err
			}
			if c.stallAfterOACK {
				res.conn = conn
				return res, nil
			}
			if err := send(appendAck(nil, 0)); err != nil {
				return res, err
			}
		case opDATA:
			res.dataPackets++
			block := binary.BigEndian.Uint16(buf[2:])
			if c.drop != nil && c.drop(expected, res.dataPackets) {
				continue
			}
			tries = 0
			if block != uint16(expected) {
				// Out of order: ask again from the last good block
				// (RFC 7440 section 4), unless it is an old duplicate.
				if uint16(expected)-block > uint16(window) {
					if err := send(appendAck(nil, uint16(expected-1))); err != nil {
						return res, err
					}
					inWindow = 0
				}
				continue
			}
			res.data = append(res.data, buf[4:n]...)
			if c.onData != nil {
				c.onData(expected)
			}
			expected++
			inWindow++
			final := n-4 < blksize
			if final || inWindow == window {
				inWindow = 0
				time.Sleep(c.pace)
				if err := send(appendAck(nil, uint16(expected-1))); err != nil {
					return res, err
				}
			}
			if final {
				return res, nil
			}
		default:
			return res, fmt.Errorf("unexpected opcode %d", op)
		}
	}
}
