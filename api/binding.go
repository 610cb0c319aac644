package api

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/stagehand-dev/stagehand/attrib"
	"github.com/stagehand-dev/stagehand/internal/throttle"
)

// bindMAC reports whether the client at ip may speak for nic (the MAC it
// named; mac is its host's key). Under MACBindingStrict it must be vouched
// for by Config.Attrib; otherwise the client gets a bare 403, the host (if
// known) an event naming the address (refuse), and nothing else is
// written. A served
// request is remembered as a claim, so the host's downloads that follow
// are put on its record.
func (s *Server) bindMAC(w http.ResponseWriter, r *http.Request, log *zerolog.Logger, nic, mac, ip string, known bool) bool {
	addr, err := netip.ParseAddr(ip)
	hw, _ := net.ParseMAC(nic) // normalized above
	if s.cfg.MACBinding == MACBindingOff {
		if err == nil {
			s.cfg.Attrib.Observe(addr, hw, attrib.SourceClaim)
		}
		return true
	}
	if err == nil {
		if src, ok := s.cfg.Attrib.Vouch(hw, addr); ok {
			log.Debug().Str("evidence", src.String()).Msg("stage 2: MAC bound to the address")
			s.cfg.Attrib.Observe(addr, hw, attrib.SourceClaim)
			return true
		}
	}
	if !known {
		mac = ""
	}
	s.refuse(w, r, http.StatusForbidden, mac, "stage2-refused",
		fmt.Sprintf("no DHCP lease, overheard DHCP exchange or neighbour entry on the serving interface ties %s to %s (serve --mac-binding)", nic, ip))
	return false
}

// refusalWindow spaces the refusal events of one host, address and kind: iPXE's
// stage 1 retries a refused chain five times in 15 s, and a stranger may
// repeat the request in a loop; the host's history needs the fact once,
// not once per request, and the store must not grow with the requests.
const refusalWindow = time.Minute

// maxRefusals bounds refusalLog's memory; past it, entries older than the
// window go, and if every entry is recent, all of them (a flood of
// strangers then costs at most one event per host and address each).
const maxRefusals = 4096

// refusalLog remembers when a refusal was last recorded per host and
// source (an address, and the kind of refusal). The zero value is ready;
// safe for concurrent use.
type refusalLog struct {
	mu   sync.Mutex
	last throttle.Recent[[2]string]
}

// first reports whether a refusal for mac from source is the first in
// refusalWindow, and if so remembers it.
func (l *refusalLog) first(mac, source string, now time.Time) bool {
	k := [2]string{mac, source}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last.Max == 0 { // the zero refusalLog
		l.last = throttle.Recent[[2]string]{Window: refusalWindow, Max: maxRefusals}
	}
	if t, ok := l.last.Last(k); ok && now.Sub(t) < refusalWindow && !now.Before(t) {
		return false
	}
	l.last.Mark(k, now)
	return true
}
