package dhcp

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// loadHex reads testdata/NAME.hex: '#' comment lines, then hex bytes.
func loadHex(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name+".hex"))
	if err != nil {
		t.Fatal(err)
	}
	var h []byte
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		l := bytes.TrimSpace(sc.Bytes())
		if len(l) == 0 || l[0] == '#' {
			continue
		}
		h = append(h, bytes.Join(bytes.Fields(l), nil)...)
	}
	b := make([]byte, hex.DecodedLen(len(h)))
	if _, err := hex.Decode(b, h); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return b
}

func loadPacket(t testing.TB, name string) *dhcpv4.DHCPv4 {
	t.Helper()
	p, err := dhcpv4.FromBytes(loadHex(t, name))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return p
}
