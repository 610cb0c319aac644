package api

import (
	"bytes"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Install tokens are 192-bit random strings, so guessing one is hopeless;
// the limiter makes trying expensive anyway and visible in metrics. Only
// failed lookups (404, 410, 403) cost anything, and only failures are
// refused: an address over its budget still gets every answer its token
// earns. A rack behind NAT shares one address with whoever guesses from
// it, and a guesser must not be able to stop the rack's installers from
// fetching user-data or reporting back.

// failureBudget is one client address's allowance of failed token
// lookups: a bucket of Burst that refills one failure per Every.
type failureBudget struct {
	tokens float64
	last   time.Time
}

// LimitPolicy shapes the limiter. The zero value means the defaults.
type LimitPolicy struct {
	Burst int           // failures allowed at once (default 20)
	Every time.Duration // one more failure allowed per Every (default 6s: 10 a minute)
}

func (p LimitPolicy) withDefaults() LimitPolicy {
	if p.Burst <= 0 {
		p.Burst = 20
	}
	if p.Every <= 0 {
		p.Every = 6 * time.Second
	}
	return p
}

// allow is the pure decision: may a client with budget b try now? It
// returns the refilled budget (not yet charged).
func (p LimitPolicy) allow(b failureBudget, now time.Time) (failureBudget, bool) {
	if b.last.IsZero() {
		b = failureBudget{tokens: float64(p.Burst), last: now}
	}
	if el := now.Sub(b.last); el > 0 {
		b.tokens += float64(el) / float64(p.Every)
		if b.tokens > float64(p.Burst) {
			b.tokens = float64(p.Burst)
		}
		b.last = now
	}
	return b, b.tokens >= 1
}

// maxLimited bounds the limiter's memory; a flood of source addresses
// evicts the oldest entries, which can only make the limiter forgetful,
// never deny an honest client.
const maxLimited = 16384

// tokenLimiter counts failed token lookups per client address.
type tokenLimiter struct {
	policy LimitPolicy
	now    func() time.Time

	mu     sync.Mutex
	byIP   map[string]failureBudget
	order  []string
	failed atomic.Uint64 // failed lookups, all addresses
	denied atomic.Uint64 // requests refused with 429
}

func newTokenLimiter(p LimitPolicy, now func() time.Time) *tokenLimiter {
	return &tokenLimiter{policy: p.withDefaults(), now: now, byIP: map[string]failureBudget{}}
}

func (l *tokenLimiter) allowed(ip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.policy.allow(l.byIP[ip], l.now())
	if _, seen := l.byIP[ip]; seen {
		l.byIP[ip] = b
	}
	return ok
}

func (l *tokenLimiter) charge(ip string) {
	l.failed.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	b, _ := l.policy.allow(l.byIP[ip], l.now())
	if _, seen := l.byIP[ip]; !seen {
		l.order = append(l.order, ip)
		if len(l.order) > maxLimited {
			delete(l.byIP, l.order[0])
			l.order = l.order[1:]
		}
	}
	b.tokens--
	l.byIP[ip] = b
}

// limitTokens wraps the token routes. Within its budget an address is
// answered as usual and each failure is charged. Over it, the request
// still runs, into a buffer, because only the store can tell a valid
// token from a guess: a success is passed on, a failure becomes 429
// (not charged again: the budget refills at its usual rate). An unknown
// token is refused before anything is written, so a guess costs a
// lookup, never a commit.
func (s *Server) limitTokens(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ip := remoteIP(r)
		if s.limiter.allowed(ip) {
			sw := &statusWriter{ResponseWriter: w}
			next(sw, r)
			if tokenFailure(sw.code) {
				s.limiter.charge(ip)
			}
			return
		}
		bw := &bufferedResponse{header: http.Header{}}
		next(bw, r)
		if tokenFailure(bw.code) {
			s.limiter.denied.Add(1)
			w.Header().Set("Retry-After", "60")
			writeError(w, http.StatusTooManyRequests, "rate_limited", "too many failed token lookups from this address; slow down")
			return
		}
		bw.copyTo(w)
	}
}

// tokenFailure reports whether a token route's answer means the token
// did not work: unknown (404), over (410), or refused here (403).
func tokenFailure(code int) bool {
	switch code {
	case http.StatusNotFound, http.StatusGone, http.StatusForbidden:
		return true
	}
	return false
}

// bufferedResponse holds a token route's answer until limitTokens knows
// whether to send it. The answers are small: a user-data document is
// bounded by userdata.MaxDocumentSize, a callback answer is one object.
type bufferedResponse struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if b.code == 0 {
		b.code = code
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.code == 0 {
		b.code = http.StatusOK
	}
	return b.body.Write(p)
}

func (b *bufferedResponse) copyTo(w http.ResponseWriter) {
	for k, v := range b.header {
		w.Header()[k] = v
	}
	if b.code == 0 {
		b.code = http.StatusOK
	}
	w.WriteHeader(b.code)
	w.Write(b.body.Bytes())
}
