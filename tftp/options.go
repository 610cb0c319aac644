package tftp

import (
	"strconv"
	"strings"
	"time"
)

// Protocol limits from the option RFCs.
const (
	defaultBlockSize = 512   // RFC 1350
	minBlockSize     = 8     // RFC 2348
	maxBlockSize     = 65464 // RFC 2348
	minTimeout       = 1     // RFC 2349, seconds
	maxTimeout       = 255   // RFC 2349, seconds
	maxWindowSize    = 65535 // RFC 7440
)

// limits are the server's caps applied while negotiating.
type limits struct {
	maxBlock  int
	maxWindow int
	timeout   time.Duration // used unless the client asks for another
}

// params are the negotiated transfer parameters.
type params struct {
	blockSize  int
	windowSize int
	timeout    time.Duration
	// oack lists the accepted options in request order with the values the
	// server settled on; empty means no OACK and the transfer starts with
	// DATA 1 (RFC 2347: a server that accepts no option acts as RFC 1350).
	oack []option
}

// negotiate applies RFC 2347/2348/2349/7440 to a request's options. It never
// fails: an option with a malformed or out-of-range value is left out of the
// OACK, which RFC 2347 allows, and unknown options are ignored. size is the
// file size, reported for tsize. A repeated option counts once.
func negotiate(opts []option, size int64, lim limits) params {
	p := params{blockSize: defaultBlockSize, windowSize: 1, timeout: lim.timeout}
	var seen [4]bool // blksize, timeout, tsize, windowsize
	for _, o := range opts {
		switch {
		case strings.EqualFold(o.name, "blksize") && !seen[0]:
			seen[0] = true
			v, ok := atoi(o.value)
			if !ok || v < minBlockSize {
				continue
			}
			// RFC 2348 lets the server answer with a smaller size; values
			// above 65464 are clamped rather than refused.
			p.blockSize = min(v, lim.maxBlock, maxBlockSize)
			p.oack = append(p.oack, option{"blksize", strconv.Itoa(p.blockSize)})
		case strings.EqualFold(o.name, "timeout") && !seen[1]:
			seen[1] = true
			v, ok := atoi(o.value)
			if !ok || v < minTimeout || v > maxTimeout {
				continue
			}
			// RFC 2349: the server must echo the value unchanged or not at all.
			p.timeout = time.Duration(v) * time.Second
			p.oack = append(p.oack, option{"timeout", strconv.Itoa(v)})
		case strings.EqualFold(o.name, "tsize") && !seen[2]:
			seen[2] = true
			if _, ok := atoi(o.value); !ok || size < 0 {
				continue
			}
			// RFC 2349: on a read request the client sends 0 and the server
			// answers with the size of the file.
			p.oack = append(p.oack, option{"tsize", strconv.FormatInt(size, 10)})
		case strings.EqualFold(o.name, "windowsize") && !seen[3]:
			seen[3] = true
			v, ok := atoi(o.value)
			if !ok || v < 1 || v > maxWindowSize {
				continue
			}
			p.windowSize = min(v, lim.maxWindow)
			p.oack = append(p.oack, option{"windowsize", strconv.Itoa(p.windowSize)})
		}
	}
	return p
}

// atoi parses a short unsigned decimal; option values are ASCII digits only
// (no sign, no spaces), and ten digits are more than any option needs.
func atoi(s string) (int, bool) {
	if s == "" || len(s) > 10 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}
