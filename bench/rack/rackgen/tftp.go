package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/stagehand-dev/stagehand/tftp/tftptest"
)

// tftpBlockSize is what PXE ROMs commonly ask for: 1432 keeps a block
// inside a 1500-byte frame with room for VLAN and IP options.
const tftpBlockSize = 1432

// tftpFetch reads file from server:69 from the host's own address into
// buf, the way a PXE ROM does: blksize and tsize (RFC 2348, RFC 2349), one
// ACK per block (windowsize 1: PXE ROMs do not know RFC 7440). Each packet
// wait is bounded by a second; a lost packet is answered by resending the
// last packet, up to five times in a row. It returns the bytes received.
func tftpFetch(src netip.Addr, server netip.AddrPort, file string, buf []byte) (int, error) {
	c := tftptest.Client{
		Options: []tftptest.Option{{Name: "blksize", Value: strconv.Itoa(tftpBlockSize)}, {Name: "tsize", Value: "0"}},
		Local:   net.IP(src.AsSlice()),
		Timeout: time.Second,
		Retries: 5,
		Buf:     buf,
	}
	res, err := c.Get(server.String(), file)
	var re *tftptest.RemoteError
	switch {
	case errors.As(err, &re):
		return res.Size, fmt.Errorf("tftp: server error %d: %s", re.Code, re.Msg)
	case err != nil && res != nil:
		return res.Size, fmt.Errorf("tftp: %w", err)
	case err != nil:
		return 0, err
	}
	return res.Size, nil
}
