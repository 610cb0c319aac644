//go:build e2e

package lab_test

import (
	"bytes"
	"net"
)

// dhcpPacket is the little of a BOOTREQUEST the smoke tests look at. The
// harness decodes it itself so that it tests stagehand's dhcp package
// against firmware, not against itself.
type dhcpPacket struct {
	mac         string
	msgType     byte   // option 53
	vendorClass string // option 60
	userClass   string // option 77, iPXE sends the plain string
}

// parseDHCP decodes an RFC 2131 BOOTREQUEST: fixed header, magic cookie,
// then RFC 2132 options.
func parseDHCP(b []byte) (dhcpPacket, bool) {
	const hdr = 236
	var p dhcpPacket
	if len(b) < hdr+4 || b[0] != 1 || b[1] != 1 || b[2] != 6 {
		return p, false
	}
	if !bytes.Equal(b[hdr:hdr+4], []byte{99, 130, 83, 99}) {
		return p, false
	}
	p.mac = net.HardwareAddr(b[28:34]).String()
	opts := b[hdr+4:]
	for len(opts) > 0 {
		code := opts[0]
		if code == 255 {
			break
		}
		if code == 0 {
			opts = opts[1:]
			continue
		}
		if len(opts) < 2 || len(opts) < 2+int(opts[1]) {
			return p, false
		}
		val := opts[2 : 2+int(opts[1])]
		switch code {
		case 53:
			if len(val) == 1 {
				p.msgType = val[0]
			}
		case 60:
			p.vendorClass = string(val)
		case 77:
			p.userClass = string(val)
		}
		opts = opts[2+int(opts[1]):]
	}
	return p, p.msgType != 0
}
