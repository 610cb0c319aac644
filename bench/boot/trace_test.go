package boot

import (
	"os"
	"strings"
	"testing"
	"time"
)

// testdata/glue.tcpdump is a real capture (TcpdumpArgs) of one glue boot,
// trimmed to the VM's tap (tap2) and the first packets of other ports.
// dnsmasq's offers there lack option 60, so iPXE asked twice before it
// took one: the ACK comes 6.1 s after power-on.
const fixtureMAC = "52:54:00:b0:07:01"

func fixture(t *testing.T) []Event {
	t.Helper()
	f, err := os.Open("testdata/glue.tcpdump")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ev, err := ParseTcpdump(f, "tap2")
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestParseTcpdump(t *testing.T) {
	ev := fixture(t)
	var got []string
	for _, e := range ev {
		if e.Iface != "tap2" {
			t.Errorf("event on %s, want only tap2: %+v", e.Iface, e)
		}
		switch e.Kind {
		case HTTPRequest:
			got = append(got, e.Method+" "+e.Path)
		case DHCPAck:
			got = append(got, "ack "+e.MAC)
		}
	}
	want := []string{
		"ack " + fixtureMAC,
		"GET /boot.ipxe", "GET /artifacts/glue/kernel", "GET /artifacts/glue/initrd",
		"ack " + fixtureMAC,
		"GET /userdata/glue-token", "POST /callback/glue-token/done",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if first := ev[0].At; !first.Equal(time.Unix(1796294425, 591459000)) {
		t.Errorf("first event at %v, want the first tap2 packet's timestamp", first)
	}
}

func TestMarksOf(t *testing.T) {
	ev := fixture(t)
	powerOn := time.Unix(1796294424, 0)
	m := MarksOf(ev, fixtureMAC, powerOn, time.Unix(1796294455, 0))
	want := map[string]float64{
		"dhcp": 6.110812, "script": 19.843164, "kernel": 19.854498, "initrd": 20.492928,
		"linux-dhcp": 30.434527, "userdata": 30.560143, "installed": 30.620777, "off": 31,
	}
	for name, w := range want {
		if got, ok := m.At[name]; !ok || got < w-1e-6 || got > w+1e-6 {
			t.Errorf("%s at %v (present %v), want %v", name, got, ok, w)
		}
	}
	// Six solicitations from the VM's link-local address before the
	// script; those of the other hosts' interfaces do not count.
	if m.RS != 6 || m.RA != 0 {
		t.Errorf("RS %d RA %d, want 6 and 0", m.RS, m.RA)
	}
}

func TestLinkLocal(t *testing.T) {
	if got := LinkLocal(fixtureMAC); got != "fe80::5054:ff:feb0:701" {
		t.Errorf("LinkLocal = %q", got)
	}
	if got := LinkLocal("nonsense"); got != "" {
		t.Errorf("LinkLocal(nonsense) = %q, want empty", got)
	}
}

func TestStatOf(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want string
	}{
		{nil, "–"},
		{[]float64{2}, "2.00"},
		{[]float64{3, 1, 2}, "2.00 (1.00–3.00)"},
		{[]float64{4, 1, 2, 3}, "2.50 (1.00–4.00)"},
		{[]float64{5, 5, 5}, "5.00"},
	} {
		if got := StatOf(tc.in).String(); got != tc.want {
			t.Errorf("StatOf(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestWriteVerdicts(t *testing.T) {
	run := func(config string, n int, installed float64, problem string) Run {
		return Run{Config: config, N: n, Problem: problem, Marks: Marks{At: map[string]float64{"installed": installed}}}
	}
	var b strings.Builder
	Write(&b, []Run{
		run("full", 1, 11, ""), run("full-ra", 1, 10.8, ""), run("glue", 1, 27.5, ""),
		run("full", 2, 11.4, ""), run("full-ra", 2, 11, ""), run("glue", 2, 27.1, ""),
		run("full", 3, 99, "the VM did not power off cleanly"),
	})
	out := b.String()
	for _, want := range []string{
		"**Verdict**, stagehand full / glue, power-on → installed: **0.41×** (11.20 s against 27.30 s, medians of 2 and 2",
		"stagehand alone / with an extra RA sender on the bridge: **1.03×** (11.20 s against 10.90 s, medians of 2 and 2): target ≤ 1.05 met.",
		"Not counted: full run 3: the VM did not power off cleanly",
		"| installed: `POST /callback/…/done` | 11.20 (11.00–11.40) | 27.30 (27.10–27.50) | 10.90 (10.80–11.00) | 0.41 | 0.40 |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}
