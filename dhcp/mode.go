package dhcp

import (
	"fmt"
	"strings"
)

// Mode selects how the server answers: beside a site DHCP server, or as the
// network's only DHCP server.
type Mode int

const (
	// ModeProxy answers PXE clients with boot information only (proxyDHCP).
	ModeProxy Mode = iota
	// ModeFull hands out addresses from a pool and boot information.
	ModeFull
)

func (m Mode) String() string {
	switch m {
	case ModeProxy:
		return "proxy"
	case ModeFull:
		return "full"
	}
	return fmt.Sprintf("mode-%d", int(m))
}

// ParseMode parses "proxy" or "full" (case-insensitive).
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "proxy":
		return ModeProxy, nil
	case "full":
		return ModeFull, nil
	}
	return 0, fmt.Errorf("dhcp: unknown mode %q (want proxy or full)", s)
}
