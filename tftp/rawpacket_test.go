package tftp

import "encoding/binary"

// Raw packet builders for tests that speak TFTP by hand; whole transfers
// use the shared client in tftp/tftptest.

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
