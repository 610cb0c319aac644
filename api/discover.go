package api

import (
	"errors"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/stagehand-dev/stagehand/internal/throttle"
	"github.com/stagehand-dev/stagehand/inventory"
	"github.com/stagehand-dev/stagehand/ipxe"
)

// With --unknown-hosts discover, any client that names a MAC not in the
// inventory makes a record, and MACs cost nothing to invent. Discovery
// is bounded twice: in all (inventory.Store.Discover's limit, counted in
// the store) and per client address (a budget here). The address is the
// one stage 2 comes from: DHCP makes no record, and a relayed host
// fetches stage 2 from its own address, not its relay's.

// Default discovery bounds (serve --discover-max, --discover-per-address).
const (
	// DefaultDiscoverMax: a site's unknown machines are a few racks of
	// tens of hosts; a thousand is far past that and still a small file.
	DefaultDiscoverMax = 1024
	// DefaultDiscoverPerAddress: one machine is one record per NIC it
	// boots from; 16 an hour leaves room for a multi-NIC server and for a
	// few machines behind one NAT address.
	DefaultDiscoverPerAddress = 16
)

// DiscoverLimit bounds the records --unknown-hosts discover makes. Zero
// values mean the defaults; a negative value means no bound.
type DiscoverLimit struct {
	Max        int // discovered records in all
	PerAddress int // records one client address may make per hour
}

func (l DiscoverLimit) withDefaults() DiscoverLimit {
	if l.Max == 0 {
		l.Max = DefaultDiscoverMax
	}
	if l.PerAddress == 0 {
		l.PerAddress = DefaultDiscoverPerAddress
	}
	return l
}

// discovery is the api's side of the bounds: the per-address budget
// (the token limiter's bucket: PerAddress at once, refilled over the
// hour), the refusals counted for /metrics, and the refusal log line at
// most once a minute.
type discovery struct {
	limit   DiscoverLimit
	budget  *tokenLimiter // nil: no per-address bound
	refused [2]atomic.Uint64
	warn    throttle.Every // the refusal log line
}

// Reasons a discovery is refused, the label of its metric.
const (
	refusedTotal   = 0 // the total bound
	refusedAddress = 1 // the client address's budget
)

var refusedReason = [2]string{"total", "address"}

func newDiscovery(l DiscoverLimit, now func() time.Time) *discovery {
	d := &discovery{limit: l.withDefaults()}
	if n := d.limit.PerAddress; n > 0 {
		d.budget = newTokenLimiter(LimitPolicy{Burst: n, Every: time.Hour / time.Duration(n)}, now)
	}
	return d
}

// discover records an unknown host that PXE-booted from ip, within the
// bounds; over them nothing is written, the refusal is counted, and
// the host is told to wait as if it had been recorded.
func (s *Server) discover(w http.ResponseWriter, r *http.Request, log *zerolog.Logger, mac, ip string, facts inventory.Facts) {
	d := s.discovery
	reason := -1
	var h inventory.Host
	var err error
	if d.budget != nil && !d.budget.allowed(ip) {
		reason = refusedAddress
	} else if h, err = s.cfg.Store.Discover(mac, ip, facts, max(d.limit.Max, 0)); errors.Is(err, inventory.ErrLimit) {
		reason = refusedTotal
	} else if err != nil {
		s.refuseStore(w, r, mac, "stage2-refused", err)
		return
	} else if d.budget != nil {
		d.budget.charge(ip)
	}
	if reason >= 0 {
		d.refused[reason].Add(1)
		if d.warn.Allow(s.cfg.Now(), time.Minute) {
			log.Warn().Str("reason", refusedReason[reason]).Int("max", d.limit.Max).Int("perAddressHour", d.limit.PerAddress).
				Msg("discovery refused: bound reached, no record made (serve --discover-max, --discover-per-address); logged once a minute")
		}
		s.writeScript(w, ipxe.RenderWait(mac, "waiting", s.cfg.Base+"/boot.ipxe", 60))
		return
	}
	log.Info().Str("serial", facts.Serial).Str("product", facts.Product).Msg("discovered host")
	s.writeScript(w, ipxe.RenderWait(h.Ident(), "discovered; waiting for an operator to assign a profile", s.cfg.Base+"/boot.ipxe", 60))
}
