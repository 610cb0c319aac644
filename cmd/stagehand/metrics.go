package main

import (
	"sort"

	"github.com/stagehand-dev/stagehand/dhcp"
	"github.com/stagehand-dev/stagehand/ipxe"
	"github.com/stagehand-dev/stagehand/metrics"
	"github.com/stagehand-dev/stagehand/tftp"
)

// writeServerMetrics adds the DHCP and TFTP servers' counters to a
// scrape. d is nil with --dhcp-mode off.
func writeServerMetrics(mw *metrics.Writer, mode string, d *dhcp.Server, t *tftp.Server) {
	if d != nil {
		st := d.Stats()
		for _, r := range []struct {
			typ string
			n   uint64
		}{{"offer", st.Offers}, {"ack", st.Acks}, {"nak", st.Naks}} {
			mw.Counter("stagehand_dhcp_replies_total", "DHCP replies sent, by type and mode.", metrics.L("type", r.typ, "mode", mode), float64(r.n))
		}
		arches := make([]ipxe.Arch, 0, len(st.ByArch))
		for a := range st.ByArch {
			arches = append(arches, a)
		}
		sort.Slice(arches, func(i, j int) bool { return arches[i] < arches[j] })
		for _, a := range arches {
			mw.Counter("stagehand_dhcp_replies_by_arch_total", "DHCP replies sent, by client architecture and mode.", metrics.L("arch", a.String(), "mode", mode), float64(st.ByArch[a]))
		}
		for _, r := range []struct {
			reason string
			n      uint64
		}{{"malformed", st.Malformed}, {"non_pxe", st.NonPXE}, {"unknown_arch", st.UnknownArch}, {"ignored", st.Ignored},
			{"overload", st.Overload}, {"pool_exhausted", st.PoolExhausted}, {"unknown_share", st.UnknownCapped}, {"store_error", st.StoreErrors},
			{"untrusted_relay", st.RelayRefused}, {"release_refused", st.ReleasesRefused},
			{"decline_refused", st.DeclinesRefused}, {"decline_capped", st.DeclinesCapped}} {
			mw.Counter("stagehand_dhcp_dropped_total", "DHCP requests not answered, by reason.", metrics.L("reason", r.reason), float64(r.n))
		}
		mw.Counter("stagehand_dhcp_received_total", "DHCP packets read.", nil, float64(st.Received))
		mw.Counter("stagehand_dhcp_send_errors_total", "DHCP replies built but refused by the socket (the client got nothing).", nil, float64(st.SendErrors))
		mw.Counter("stagehand_dhcp_reservations_blocked_total", "DHCP requests of hosts whose reserved address could not be given; served from the pool instead.", nil, float64(st.ReservationsBlocked))
		mw.Counter("stagehand_dhcp_events_dropped_total", "DHCP replies whose inventory event was dropped because the event queue was full.", nil, float64(st.HooksDropped))
	}
	ts := t.Stats()
	for _, r := range []struct {
		result string
		n      uint64
	}{{"ok", ts.TransfersOK}, {"failed", ts.TransfersFailed}, {"aborted", ts.TransfersAborted}} {
		mw.Counter("stagehand_tftp_transfers_total", "TFTP transfers by result (aborted: the client sent ERROR, e.g. a tsize probe).", metrics.L("result", r.result), float64(r.n))
	}
	for _, r := range []struct {
		reason string
		n      uint64
	}{{"busy", ts.RefusedBusy}, {"per_client", ts.RefusedPerClient}, {"pending", ts.RefusedPending}} {
		mw.Counter("stagehand_tftp_refused_total", "TFTP read requests refused, by reason (busy: --tftp-max-transfers running, every client answered; per_client: --tftp-max-per-client running from that address; pending: a cap reached and the oldest pending transfer may still be answered; dropped unanswered).", metrics.L("reason", r.reason), float64(r.n))
	}
	for _, r := range []struct {
		reason string
		n      uint64
	}{{"timeout", ts.Unanswered}, {"evicted", ts.Evicted}} {
		mw.Counter("stagehand_tftp_unanswered_total", "TFTP transfers whose client never answered the first packet, ended to give their slot back, by reason (timeout: --tftp-pending-timeout with half of --tftp-max-pending in use; evicted: for a new request, a cap reached).", metrics.L("reason", r.reason), float64(r.n))
	}
	mw.Counter("stagehand_tftp_bytes_total", "TFTP file bytes acknowledged.", nil, float64(ts.Bytes))
	mw.Counter("stagehand_tftp_retransmits_total", "TFTP packets sent again after a timeout.", nil, float64(ts.Retransmits))
	mw.Counter("stagehand_tftp_bad_packets_total", "Malformed or unexpected TFTP packets dropped.", nil, float64(ts.BadPackets))
	mw.Gauge("stagehand_tftp_active_transfers", "TFTP transfers running now, pending ones included.", nil, float64(ts.Active))
	mw.Gauge("stagehand_tftp_pending_transfers", "TFTP transfers whose client has not answered the first packet yet.", nil, float64(ts.Pending))
	for _, r := range []struct {
		state string
		n     int64
	}{{"active", ts.PeakActive}, {"pending", ts.PeakPending}} {
		mw.Gauge("stagehand_tftp_peak_transfers", "The most TFTP transfers at once since the server started, by state (active includes pending).", metrics.L("state", r.state), float64(r.n))
	}
}
