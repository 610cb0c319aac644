package perfdhcp

import (
	"reflect"
	"strings"
	"testing"
)

// The shape of `perfdhcp -x l` output (Kea 2.x), trimmed.
const sample = `***Statistics for: DISCOVER-OFFER***
sent packets: 10
***Leases for DISCOVER-OFFER***
01020000000001,10.0.0.9
***Leases for REQUEST-ACK***
01020000000001,10.250.64.1
010200000000FF,10.250.64.2
01020000000001,10.250.64.3
not a lease line
***Statistics for: REQUEST-ACK***
`

func TestAckedLeases(t *testing.T) {
	m, n, err := AckedLeases(strings.NewReader(sample))
	want := map[string]string{"02:00:00:00:00:01": "10.250.64.3", "02:00:00:00:00:ff": "10.250.64.2"}
	if err != nil || n != 3 || !reflect.DeepEqual(m, want) {
		t.Fatalf("AckedLeases = %v, %d, %v", m, n, err)
	}
	if _, _, err := AckedLeases(strings.NewReader("***Leases for REQUEST-ACK***\n")); err == nil {
		t.Error("no ACK lines: want an error")
	}
	if _, _, err := AckedLeases(strings.NewReader("***Leases for REQUEST-ACK***\n01020000000001,nope\n")); err == nil {
		t.Error("bad address: want an error")
	}
	miss := Missing(want, map[string]string{"02:00:00:00:00:01": "10.250.64.3", "02:00:00:00:00:ff": "10.250.64.9"})
	if len(miss) != 1 || !strings.Contains(miss[0], "02:00:00:00:00:ff → 10.250.64.2") {
		t.Errorf("Missing = %q", miss)
	}
}
