package userdata

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Network is the site network of the seed's "Site Setting Name" table. Type
// is "dhcp" or "static"; static requires IPAddress, Mask (a prefix length
// 0..32, e.g. "24") and Gateway. Mask may arrive as a JSON or YAML number.
type Network struct {
	Type       string `json:"type,omitempty" yaml:"type,omitempty"`
	IPAddress  string `json:"ipAddress,omitempty" yaml:"ipAddress,omitempty"`
	Mask       string `json:"mask,omitempty" yaml:"mask,omitempty"`
	Gateway    string `json:"gateway,omitempty" yaml:"gateway,omitempty"`
	Nameserver string `json:"nameserver,omitempty" yaml:"nameserver,omitempty"`
	HTTPProxy  string `json:"httpProxy,omitempty" yaml:"httpProxy,omitempty"`
}

// UnmarshalJSON accepts mask as a string ("24") or a number (24), since
// operators write both in API bodies and CSV-derived JSON.
func (n *Network) UnmarshalJSON(b []byte) error {
	type plain Network
	var aux struct {
		plain
		Mask json.RawMessage `json:"mask,omitempty"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	*n = Network(aux.plain)
	n.Mask = ""
	raw := bytes.TrimSpace(aux.Mask)
	switch {
	case len(raw) == 0 || string(raw) == "null":
	case raw[0] == '"':
		if err := json.Unmarshal(raw, &n.Mask); err != nil {
			return fmt.Errorf("network mask: %w", err)
		}
	default:
		var num json.Number
		if err := json.Unmarshal(raw, &num); err != nil {
			return fmt.Errorf("network mask: must be a prefix length: %w", err)
		}
		n.Mask = num.String()
	}
	return nil
}

// Site holds the stylus.site fields stagehand knows about (the seed's "Site"
// table plus the site network).
type Site struct {
	PaletteEndpoint string            `json:"paletteEndpoint,omitempty" yaml:"paletteEndpoint,omitempty"`
	Name            string            `json:"name,omitempty" yaml:"name,omitempty"`
	RegistrationURL string            `json:"registrationURL,omitempty" yaml:"registrationURL,omitempty"`
	ProjectUID      string            `json:"projectUid,omitempty" yaml:"projectUid,omitempty"`
	EdgeHostToken   string            `json:"edgeHostToken,omitempty" yaml:"edgeHostToken,omitempty"` // a secret: never logged, masked by Redact
	Tags            map[string]string `json:"tags,omitempty" yaml:"tags,omitempty"`
	Network         *Network          `json:"network,omitempty" yaml:"network,omitempty"`
}

// String omits EdgeHostToken so that a Site printed with %v or a logger's
// Interface field carries no secret.
func (s Site) String() string {
	tok := ""
	if s.EdgeHostToken != "" {
		tok = masked
	}
	return fmt.Sprintf("{paletteEndpoint:%q name:%q registrationURL:%q projectUid:%q edgeHostToken:%q tags:%v network:%v}",
		s.PaletteEndpoint, s.Name, s.RegistrationURL, s.ProjectUID, tok, s.Tags, s.Network)
}

// GoString keeps %#v from printing EdgeHostToken too.
func (s Site) GoString() string { return "userdata.Site" + s.String() }

// Input is everything Render needs for one host.
type Input struct {
	// Base is the profile's base user-data YAML. It may be empty and may or
	// may not start with "#cloud-config".
	Base []byte
	// Overrides is the host's own user-data YAML, deep-merged over Base. It
	// may be empty.
	Overrides []byte
	// Site holds the host's site fields from the inventory. Non-empty fields
	// win over Base and Overrides; Tags merge key by key, the host's winning.
	Site Site
	// HostName is the inventory name; it becomes stylus.site.name when
	// Site.Name is empty.
	HostName string
	// CallbackURL, e.g. "http://10.0.0.1:8080/callback/TOKEN", makes Render
	// append an after-install step that POSTs to CallbackURL+"/done". Empty
	// means no callback.
	CallbackURL string
}

// FieldError is one validation problem: the dotted field path and why.
type FieldError struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

func (e FieldError) Error() string { return e.Field + ": " + e.Reason }

// ValidationError gathers every problem found, not only the first. Callers
// add the host's MAC or name when they report it.
type ValidationError struct {
	Errors []FieldError `json:"errors"`
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		parts[i] = fe.Error()
	}
	return "invalid user-data: " + strings.Join(parts, "; ")
}

// problems collects FieldErrors and turns them into a *ValidationError.
type problems []FieldError

func (p *problems) add(field, format string, args ...any) {
	*p = append(*p, FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return &ValidationError{Errors: p}
}

// MetaData returns a NoCloud meta-data document (instance-id and, when set,
// local-hostname), the companion of user-data on a cidata volume.
func MetaData(instanceID, hostname string) []byte {
	doc := &yaml.Node{Kind: yaml.MappingNode}
	// The encoder refuses invalid UTF-8 in a plain string; these values come
	// from the inventory, so repair rather than fail.
	setKey(doc, "instance-id", strNode(strings.ToValidUTF8(instanceID, "\uFFFD")))
	if hostname != "" {
		setKey(doc, "local-hostname", strNode(strings.ToValidUTF8(hostname, "\uFFFD")))
	}
	out, err := encode(doc)
	if err != nil {
		return []byte("instance-id: " + strconv.Quote(instanceID) + "\n")
	}
	return out
}
