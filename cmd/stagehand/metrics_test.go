package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"

	"github.com/stagehand-dev/stagehand/dhcp"
	"github.com/stagehand-dev/stagehand/metrics"
	"github.com/stagehand-dev/stagehand/tftp"
)

// The DHCP and TFTP servers' counters parse as Prometheus text, with
// their types, and a reply the socket refused to send is exported. The
// refusal is the kernel's: the server's socket is shut down for writing
// (it still reads), so every reply's sendto fails with EPIPE.
func TestServerMetricsExposition(t *testing.T) {
	d, err := dhcp.NewServer(dhcp.Config{
		Mode: dhcp.ModeProxy, ServerIP: net.IPv4(127, 0, 0, 1),
		Policy: dhcp.PolicyFunc(func(*dhcp.Client) bool { return true }),
		Log:    zerolog.New(zerolog.NewTestWriter(t)),
	})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := conn.(*net.UDPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var shutErr error
	if err := rc.Control(func(fd uintptr) { shutErr = syscall.Shutdown(int(fd), syscall.SHUT_WR) }); err != nil {
		t.Fatal(err)
	}
	// An unconnected UDP socket answers ENOTCONN but is shut down all the
	// same (inet_shutdown); the sends below prove it either way.
	if shutErr != nil && shutErr != syscall.ENOTCONN {
		t.Fatalf("shutdown: %v", shutErr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx, conn) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("dhcp Serve: %v", err)
		}
	})

	raw, err := os.ReadFile("../../dhcp/testdata/bios-pxe-discover.hex")
	if err != nil {
		t.Fatal(err)
	}
	var digits strings.Builder
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "#") {
			digits.WriteString(strings.TrimSpace(line))
		}
	}
	pkt, err := hex.DecodeString(digits.String())
	if err != nil {
		t.Fatal(err)
	}
	client, err := net.Dial("udp4", conn.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	deadline := time.Now().Add(10 * time.Second)
	for d.Stats().SendErrors == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no send error recorded: %+v", d.Stats())
		}
		if _, err := client.Write(pkt); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	var b bytes.Buffer
	writeServerMetrics(metrics.NewWriter(&b), "proxy", d, &tftp.Server{Handler: tftp.Dir(t.TempDir())})
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatalf("Prometheus cannot parse the servers' metrics: %v\n%s", err, b.String())
	}
	for name, typ := range map[string]dto.MetricType{
		"stagehand_dhcp_replies_total":              dto.MetricType_COUNTER,
		"stagehand_dhcp_dropped_total":              dto.MetricType_COUNTER,
		"stagehand_dhcp_received_total":             dto.MetricType_COUNTER,
		"stagehand_dhcp_send_errors_total":          dto.MetricType_COUNTER,
		"stagehand_dhcp_reservations_blocked_total": dto.MetricType_COUNTER,
		"stagehand_dhcp_events_dropped_total":       dto.MetricType_COUNTER,
		"stagehand_tftp_transfers_total":            dto.MetricType_COUNTER,
		"stagehand_tftp_refused_total":              dto.MetricType_COUNTER,
		"stagehand_tftp_bytes_total":                dto.MetricType_COUNTER,
		"stagehand_tftp_active_transfers":           dto.MetricType_GAUGE,
		"stagehand_tftp_pending_transfers":          dto.MetricType_GAUGE,
		"stagehand_tftp_peak_transfers":             dto.MetricType_GAUGE,
		"stagehand_tftp_unanswered_total":           dto.MetricType_COUNTER,
	} {
		f := fams[name]
		if f == nil {
			t.Errorf("family %s missing:\n%s", name, b.String())
			continue
		}
		if f.GetType() != typ {
			t.Errorf("family %s is a %s, want %s", name, f.GetType(), typ)
		}
	}
	if f := fams["stagehand_dhcp_send_errors_total"]; f != nil {
		if got, want := f.Metric[0].GetCounter().GetValue(), float64(d.Stats().SendErrors); got < 1 || got > want {
			t.Errorf("stagehand_dhcp_send_errors_total = %v, want between 1 and %v", got, want)
		}
	}
}
