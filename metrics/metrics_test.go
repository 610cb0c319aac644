package metrics

import (
	"bytes"
	"sync"
	"testing"
)

func TestExposition(t *testing.T) {
	var b bytes.Buffer
	mw := NewWriter(&b)
	mw.Counter("x_total", "Things.", L("arch", "bios", "mode", "proxy"), 3)
	mw.Counter("x_total", "Things.", L("arch", `e"fi`), 1)
	mw.Gauge("hosts", "Hosts.", nil, 2)
	h := NewHistogram(10, 60)
	for _, v := range []float64{5, 30, 30, 100, 60} {
		h.Observe(v)
	}
	h.Write(mw, "d_seconds", "Durations.")
	want := `# HELP x_total Things.
# TYPE x_total counter
x_total{arch="bios",mode="proxy"} 3
x_total{arch="e\"fi"} 1
# HELP hosts Hosts.
# TYPE hosts gauge
hosts 2
# HELP d_seconds Durations.
# TYPE d_seconds histogram
d_seconds_bucket{le="10"} 1
d_seconds_bucket{le="60"} 4
d_seconds_bucket{le="+Inf"} 5
d_seconds_sum 225
d_seconds_count 5
`
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestRequestCounterConcurrent(t *testing.T) {
	var c RequestCounter
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 1000; j++ {
				c.Inc("/ipxe", 200)
				c.Inc("/userdata/{token}", 404)
			}
		}()
	}
	wg.Wait()
	var b bytes.Buffer
	c.Write(NewWriter(&b), "http_requests_total", "Requests.")
	want := "# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\n" +
		"http_requests_total{route=\"/ipxe\",code=\"200\"} 8000\n" +
		"http_requests_total{route=\"/userdata/{token}\",code=\"404\"} 8000\n"
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
}
