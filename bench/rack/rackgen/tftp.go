package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// TFTP opcodes (RFC 1350 §5, RFC 2347).
const (
	opRRQ   = 1
	opDATA  = 3
	opACK   = 4
	opERROR = 5
	opOACK  = 6
)

// tftpBlockSize is what PXE ROMs commonly ask for: 1432 keeps a block
// inside a 1500-byte frame with room for VLAN and IP options.
const tftpBlockSize = 1432

// rrq builds a read request for file with blksize and tsize (RFC 2348,
// RFC 2349), as a PXE ROM sends it.
func rrq(file string, blksize int) []byte {
	var b bytes.Buffer
	b.Write([]byte{0, opRRQ})
	for _, s := range []string{file, "octet", "blksize", strconv.Itoa(blksize), "tsize", "0"} {
		b.WriteString(s)
		b.WriteByte(0)
	}
	return b.Bytes()
}

// parseOACK returns the options of an OACK body (after the opcode).
func parseOACK(p []byte) (map[string]string, error) {
	out := map[string]string{}
	parts := bytes.Split(p, []byte{0})
	if len(parts) == 0 || len(parts[len(parts)-1]) != 0 {
		return nil, errors.New("OACK not NUL-terminated")
	}
	parts = parts[:len(parts)-1]
	if len(parts)%2 != 0 {
		return nil, errors.New("OACK with an odd number of strings")
	}
	for i := 0; i < len(parts); i += 2 {
		out[string(bytes.ToLower(parts[i]))] = string(parts[i+1])
	}
	return out, nil
}

// tftpFetch reads file from server:69 from the host's own address, one
// ACK per block (windowsize 1: PXE ROMs do not know RFC 7440), and
// returns the bytes received. Each packet wait is bounded by timeout;
// a lost packet is answered by resending the last packet, up to retries
// times in a row.
func tftpFetch(src netip.Addr, server netip.AddrPort, file string, buf []byte) (int, error) {
	const (
		timeout = time.Second
		retries = 5
	)
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	last := rrq(file, tftpBlockSize)
	lastDst := net.UDPAddrFromAddrPort(server)
	var peer *net.UDPAddr // the server's transfer ID, learned from its first answer
	blksize := 512
	tsize := -1
	want := uint16(1)
	got := 0
	pkt := make([]byte, 65536)
	misses := 0
	if _, err := c.WriteToUDP(last, lastDst); err != nil {
		return 0, err
	}
	for {
		c.SetReadDeadline(time.Now().Add(timeout))
		n, from, err := c.ReadFromUDP(pkt)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if misses++; misses > retries {
					return got, fmt.Errorf("tftp: no answer after %d tries (block %d)", retries, want)
				}
				c.WriteToUDP(last, lastDst)
				continue
			}
			return got, err
		}
		if peer != nil && (!from.IP.Equal(peer.IP) || from.Port != peer.Port) {
			continue // RFC 1350 §4: not our transfer
		}
		if n < 4 {
			continue
		}
		op := binary.BigEndian.Uint16(pkt)
		switch op {
		case opERROR:
			return got, fmt.Errorf("tftp: server error %d: %s", binary.BigEndian.Uint16(pkt[2:]), bytes.TrimRight(pkt[4:n], "\x00"))
		case opOACK:
			if peer != nil {
				continue // duplicate OACK: our ACK 0 went out already
			}
			peer = from
			opts, err := parseOACK(pkt[2:n])
			if err != nil {
				return got, err
			}
			if v, ok := opts["blksize"]; ok {
				if blksize, err = strconv.Atoi(v); err != nil || blksize < 8 || blksize > tftpBlockSize {
					return got, fmt.Errorf("tftp: bad blksize %q in OACK", v)
				}
			}
			if v, ok := opts["tsize"]; ok {
				if tsize, err = strconv.Atoi(v); err != nil || tsize < 0 || tsize > len(buf) {
					return got, fmt.Errorf("tftp: tsize %q does not fit", v)
				}
			}
			last, lastDst, misses = ack(0), peer, 0
			c.WriteToUDP(last, lastDst)
		case opDATA:
			if peer == nil {
				peer = from // the server took no option: RFC 1350 transfer
			}
			blk := binary.BigEndian.Uint16(pkt[2:])
			if blk != want {
				continue // a duplicate; our retransmission timer covers loss
			}
			data := pkt[4:n]
			if got+len(data) > len(buf) {
				return got, errors.New("tftp: file larger than expected")
			}
			copy(buf[got:], data)
			got += len(data)
			last, lastDst, misses = ack(blk), peer, 0
			c.WriteToUDP(last, lastDst)
			want++
			if len(data) < blksize {
				if tsize >= 0 && got != tsize {
					return got, fmt.Errorf("tftp: got %d bytes, tsize said %d", got, tsize)
				}
				return got, nil
			}
		}
	}
}

func ack(blk uint16) []byte { return []byte{0, opACK, byte(blk >> 8), byte(blk)} }
