package userdata

import (
	"bytes"
	"net/url"
	"strings"

	"gopkg.in/yaml.v3"
)

const masked = "********"

// redactLimit is larger than MaxDocumentSize: a rendered document holds a
// base and an override of up to MaxDocumentSize each plus computed fields.
const redactLimit = 4 * MaxDocumentSize

// secretKeys are mapping keys whose scalar values are masked wherever they
// appear: stylus.site.edgeHostToken, and passwd in Kairos users (in stages
// as in the seed's initramfs example, or top-level users).
var secretKeys = map[string]bool{
	"edgeHostToken": true,
	"passwd":        true,
	"password":      true,
}

// Redact returns doc with secret values replaced by "********": edgeHostToken,
// every passwd (and password) value, and the password of any URL-valued
// httpProxy. It is meant for the operator preview and for logs. A document
// that cannot be parsed is withheld whole rather than passed through, since
// its secrets cannot be located.
func Redact(doc []byte) []byte {
	header := bytes.HasPrefix(doc, []byte(cloudConfigHeader))
	root, fe := parseDoc(doc, "userdata", redactLimit)
	if fe != nil {
		return []byte(cloudConfigHeader + "\n# document withheld: it could not be parsed for redaction\n")
	}
	maskSecrets(root)
	out, err := encode(root)
	if err != nil {
		return []byte(cloudConfigHeader + "\n# document withheld: it could not be encoded after redaction\n")
	}
	if header {
		out = append([]byte(cloudConfigHeader+"\n"), out...)
	}
	return out
}

// HasSecrets reports whether doc holds a value Redact would mask: a
// document with one hands it to every machine that fetches it. A
// document that cannot be parsed is taken to hold some.
func HasSecrets(doc []byte) bool {
	root, fe := parseDoc(doc, "userdata", redactLimit)
	return fe != nil || maskSecrets(root) > 0
}

// maskSecrets masks n's secret values and returns how many it masked.
func maskSecrets(n *yaml.Node) int {
	masks := 0
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode || v.Kind != yaml.ScalarNode || isNull(v) {
				continue
			}
			switch {
			case secretKeys[k.Value] && v.Value != "":
				n.Content[i+1] = strNode(masked)
				masks++
			case k.Value == "httpProxy":
				if u, err := url.Parse(v.Value); err == nil && u.User != nil {
					if _, has := u.User.Password(); has {
						// Built by hand: url.UserPassword would percent-encode the mask.
						name := url.User(u.User.Username()).String()
						u.User = nil
						rest := strings.TrimPrefix(u.String(), u.Scheme+"://")
						n.Content[i+1] = strNode(u.Scheme + "://" + name + ":" + masked + "@" + rest)
						masks++
					}
				}
			}
		}
	}
	for _, c := range n.Content {
		masks += maskSecrets(c)
	}
	return masks
}
