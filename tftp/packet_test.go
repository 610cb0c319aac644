package tftp

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

func TestParseRequest(t *testing.T) {
	long := strings.Repeat("a", 256)
	cases := []struct {
		name    string
		in      []byte
		want    request
		wantErr error
	}{
		{"plain rrq", []byte("\x00\x01undionly.kpxe\x00octet\x00"),
			request{op: opRRQ, filename: "undionly.kpxe", mode: "octet"}, nil},
		{"wrq", []byte("\x00\x02f\x00octet\x00"), request{op: opWRQ, filename: "f", mode: "octet"}, nil},
		{"options kept in order and case", []byte("\x00\x01/ipxe.efi\x00OCTET\x00TSIZE\x000\x00blksize\x001468\x00"),
			request{op: opRRQ, filename: "/ipxe.efi", mode: "OCTET", options: []option{{"TSIZE", "0"}, {"blksize", "1468"}}}, nil},
		{"padding NULs tolerated", []byte("\x00\x01f\x00octet\x00\x00\x00\x00"),
			request{op: opRRQ, filename: "f", mode: "octet"}, nil},
		{"dangling option name ignored", []byte("\x00\x01f\x00octet\x00blksize\x00"),
			request{op: opRRQ, filename: "f", mode: "octet"}, nil},
		{"empty option name skipped", []byte("\x00\x01f\x00octet\x00\x00x\x00tsize\x000\x00"),
			request{op: opRRQ, filename: "f", mode: "octet", options: []option{{"tsize", "0"}}}, nil},
		{"empty", nil, request{}, errShort},
		{"one byte", []byte{0}, request{}, errShort},
		{"data opcode", []byte("\x00\x03\x00\x01abc"), request{op: opDATA}, errNotRequest},
		{"unknown opcode", []byte("\x00\x09f\x00octet\x00"), request{op: 9}, errNotRequest},
		{"no filename terminator", []byte("\x00\x01file"), request{op: opRRQ}, errUnterm},
		{"empty filename", []byte("\x00\x01\x00octet\x00"), request{op: opRRQ}, errFilename},
		{"filename too long", []byte("\x00\x01" + long + "\x00octet\x00"), request{op: opRRQ}, errFilename},
		{"no mode", []byte("\x00\x01f\x00"), request{op: opRRQ, filename: "f"}, errUnterm},
		{"empty mode", []byte("\x00\x01f\x00\x00"), request{op: opRRQ, filename: "f"}, errMode},
		{"unterminated mode", []byte("\x00\x01f\x00octet"), request{op: opRRQ, filename: "f"}, errUnterm},
		{"unterminated option value", []byte("\x00\x01f\x00octet\x00blksize\x001468"),
			request{op: opRRQ, filename: "f", mode: "octet"}, errUnterm},
		{"option value too long", []byte("\x00\x01f\x00octet\x00blksize\x00" + strings.Repeat("1", 65) + "\x00"),
			request{op: opRRQ, filename: "f", mode: "octet"}, errOptionLen},
		{"too many options", append([]byte("\x00\x01f\x00octet\x00"), bytes.Repeat([]byte("a\x001\x00"), 17)...),
			request{}, errOptionCount},
		{"over 512 octets", append([]byte("\x00\x01f\x00octet\x00"), bytes.Repeat([]byte{0}, 510)...), request{}, errTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseRequest(tc.in)
			if err != tc.wantErr {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err == nil && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseReply(t *testing.T) {
	cases := []struct {
		name    string
		in      []byte
		want    reply
		wantErr bool
	}{
		{"ack", []byte{0, 4, 0xff, 0xfe}, reply{op: opACK, block: 65534}, false},
		{"ack with trailing bytes", []byte{0, 4, 0, 1, 9, 9}, reply{op: opACK, block: 1}, false},
		{"error", []byte("\x00\x05\x00\x08tsize only\x00"), reply{op: opERROR, code: errOptions, msg: "tsize only"}, false},
		{"error without NUL", []byte("\x00\x05\x00\x00abc"), reply{op: opERROR, msg: "abc"}, false},
		{"error message truncated", append([]byte("\x00\x05\x00\x00"), bytes.Repeat([]byte("x"), 400)...),
			reply{op: opERROR, msg: strings.Repeat("x", maxErrorMsgLen)}, false},
		{"data passes through", []byte{0, 3, 0, 1}, reply{op: opDATA}, false},
		{"short", []byte{0, 4, 0}, reply{}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseReply(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v", err)
			}
			if !tc.wantErr && got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestEncode(t *testing.T) {
	if got, want := appendError(nil, errNotFound, "file not found"), []byte("\x00\x05\x00\x01file not found\x00"); !bytes.Equal(got, want) {
		t.Errorf("ERROR = %q, want %q", got, want)
	}
	if got, want := appendOACK(nil, []option{{"tsize", "74213"}, {"blksize", "1468"}}), []byte("\x00\x06tsize\x0074213\x00blksize\x001468\x00"); !bytes.Equal(got, want) {
		t.Errorf("OACK = %q, want %q", got, want)
	}
	b := make([]byte, 4)
	putDataHeader(b, 0x1234)
	if want := []byte{0, 3, 0x12, 0x34}; !bytes.Equal(b, want) {
		t.Errorf("DATA header = %x, want %x", b, want)
	}
}

// FuzzParseRequest checks that no input panics and that accepted requests
// respect the bounds.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte("\x00\x01undionly.kpxe\x00octet\x00tsize\x000\x00blksize\x001468\x00"))
	f.Add([]byte("\x00\x01/snponly.efi\x00octet\x00blksize\x001468\x00windowsize\x004\x00"))
	f.Add([]byte("\x00\x02f\x00netascii\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseRequest(b)
		if err != nil {
			return
		}
		if len(r.filename) == 0 || len(r.filename) > maxFilenameLen || len(r.options) > maxOptions {
			t.Fatalf("accepted out-of-bounds request %+v", r)
		}
		negotiate(r.options, 1000, limits{maxBlock: 1468, maxWindow: 64})
	})
}
