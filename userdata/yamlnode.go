package userdata

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"gopkg.in/yaml.v3"
)

const (
	// MaxDocumentSize bounds Base and Overrides. Real user-data is a few KiB;
	// the bound keeps a hostile or mistaken upload from costing the server.
	MaxDocumentSize = 256 << 10
	// maxNodes and maxDepth bound the parsed tree. yaml.v3 stops at depth
	// 10000 on its own, far past anything a config needs and deep enough
	// to make every recursive walk here expensive.
	maxNodes = 50000
	maxDepth = 64
	// maxMapKeys bounds one mapping's width: yaml.v3's decoder (ours and,
	// likely, the installer's) checks duplicate keys pairwise, quadratic in
	// the width. 25000 keys in one mapping cost over a second.
	maxMapKeys = 1000

	cloudConfigHeader = "#cloud-config"
)

// parseDoc parses one user-data document into its top-level mapping node.
// Empty (or comment-only) input yields an empty mapping. field names the
// document in errors: "profile.userdata" or "userdata".
func parseDoc(src []byte, field string, limit int) (*yaml.Node, *FieldError) {
	if len(src) > limit {
		return nil, &FieldError{Field: field, Reason: fmt.Sprintf("document is %d bytes, larger than the %d byte limit", len(src), limit)}
	}
	root, err := decodeOne(src)
	if err != nil {
		return nil, &FieldError{Field: field, Reason: err.Error()}
	}
	if root == nil {
		return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}, nil
	}
	if err := checkTree(root); err != nil {
		return nil, &FieldError{Field: field, Reason: err.Error()}
	}
	if isNull(root) {
		return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, &FieldError{Field: field, Reason: "top level must be a mapping, not a " + kindName(root)}
	}
	// Parsing into nodes does not resolve values; decoding does, and finds
	// what the installer's own decoder would choke on (a !!binary that is
	// not base64, an out-of-range !!int). Without aliases, and with mappings
	// no wider than maxMapKeys, this stays cheap.
	if err := decodeCheck(root); err != nil {
		return nil, &FieldError{Field: field, Reason: err.Error()}
	}
	normalize(root)
	return root, nil
}

// decodeOne returns the content of the only document in src, or nil when
// src holds no document at all.
func decodeOne(src []byte) (root *yaml.Node, err error) {
	// yaml.v3 turns its internal failures into errors, but a panic from a
	// third-party parser on network-supplied bytes must never take the
	// server down.
	defer func() {
		if r := recover(); r != nil {
			root, err = nil, fmt.Errorf("YAML parser failed: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, fmt.Errorf("invalid YAML: %s", trimYAMLError(err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, fmt.Errorf("invalid YAML: %s", trimYAMLError(err))
		}
		return nil, errors.New("holds more than one YAML document; user-data is a single document")
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, nil
	}
	return doc.Content[0], nil
}

func decodeCheck(root *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("YAML decoder failed: %v", r)
		}
	}()
	var v any
	if err := root.Decode(&v); err != nil {
		return fmt.Errorf("invalid YAML value: %s", trimYAMLError(err))
	}
	return nil
}

func trimYAMLError(err error) string {
	return strings.TrimPrefix(err.Error(), "yaml: ")
}

// checkTree enforces the structural limits: node count, depth, mapping
// width, no anchors or aliases, no duplicate keys. Aliases are refused
// outright rather than counted: an alias "billion laughs" costs nothing to
// parse into nodes but expands exponentially in whatever later decodes the
// rendered document, and user-data never needs them.
func checkTree(root *yaml.Node) error {
	count := 0
	var walk func(n *yaml.Node, depth int) error
	walk = func(n *yaml.Node, depth int) error {
		count++
		if count > maxNodes {
			return fmt.Errorf("document has more than %d YAML nodes", maxNodes)
		}
		if depth > maxDepth {
			return fmt.Errorf("document nests deeper than %d levels", maxDepth)
		}
		if n.Kind == yaml.AliasNode || n.Anchor != "" {
			return fmt.Errorf("line %d: YAML anchors and aliases are not supported", n.Line)
		}
		if n.Kind == yaml.MappingNode {
			if len(n.Content)%2 != 0 {
				return fmt.Errorf("line %d: malformed mapping", n.Line)
			}
			if len(n.Content)/2 > maxMapKeys {
				return fmt.Errorf("line %d: mapping has more than %d keys", n.Line, maxMapKeys)
			}
			seen := make(map[string]bool, len(n.Content)/2)
			for i := 0; i < len(n.Content); i += 2 {
				k := n.Content[i]
				if k.Kind != yaml.ScalarNode {
					continue
				}
				if seen[k.Value] {
					return fmt.Errorf("line %d: duplicate key %q", k.Line, k.Value)
				}
				seen[k.Value] = true
			}
		}
		for _, c := range n.Content {
			if err := walk(c, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(root, 0)
}

// normalize drops comments (see the package doc) and turns flow
// collections into block ones, so that keys stagehand adds to a mapping
// written as {a: 1} come out in the same layout as everything else.
func normalize(n *yaml.Node) {
	n.HeadComment, n.LineComment, n.FootComment = "", "", ""
	if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode {
		n.Style &^= yaml.FlowStyle
	}
	for _, c := range n.Content {
		normalize(c)
	}
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "list"
	case yaml.MappingNode:
		return "mapping"
	case yaml.ScalarNode:
		return "scalar"
	case yaml.AliasNode:
		return "alias"
	default:
		return "document"
	}
}

// merge deep-merges src over dst in place. Keys of dst keep their positions;
// keys only in src are appended in src's order. See the package doc for why
// sequences replace rather than concatenate. Only scalar keys match; complex
// keys are opaque and always appended. An index keeps a merge of two wide
// mappings linear rather than quadratic.
func merge(dst, src *yaml.Node) {
	index := make(map[string]int, len(dst.Content)/2)
	for i := 0; i+1 < len(dst.Content); i += 2 {
		if k := dst.Content[i]; k.Kind == yaml.ScalarNode {
			if _, dup := index[k.Value]; !dup {
				index[k.Value] = i
			}
		}
	}
	for i := 0; i+1 < len(src.Content); i += 2 {
		k, v := src.Content[i], src.Content[i+1]
		j, found := index[k.Value]
		if k.Kind != yaml.ScalarNode || !found {
			if k.Kind == yaml.ScalarNode {
				index[k.Value] = len(dst.Content)
			}
			dst.Content = append(dst.Content, k, v)
			continue
		}
		cur := dst.Content[j+1]
		if cur.Kind == yaml.MappingNode && v.Kind == yaml.MappingNode {
			merge(cur, v)
			continue
		}
		dst.Content[j+1] = v
	}
}

// lookup returns the value under key in mapping m, or nil.
func lookup(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if c := m.Content[i]; c.Kind == yaml.ScalarNode && c.Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// setKey sets key in mapping m to v, keeping the key's position if present.
func setKey(m *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if c := m.Content[i]; c.Kind == yaml.ScalarNode && c.Value == key {
			m.Content[i+1] = v
			return
		}
	}
	m.Content = append(m.Content, strNode(key), v)
}

// deleteKey removes key from mapping m if present.
func deleteKey(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if c := m.Content[i]; c.Kind == yaml.ScalarNode && c.Value == key {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
}

// childMap returns the mapping under key in m, creating it when absent or
// null. ok is false when the key holds something other than a mapping.
func childMap(m *yaml.Node, key string) (child *yaml.Node, ok bool) {
	v := lookup(m, key)
	if v == nil || isNull(v) {
		child = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		setKey(m, key, child)
		return child, true
	}
	if v.Kind != yaml.MappingNode {
		return nil, false
	}
	return v, true
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func strNode(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

func boolNode(b bool) *yaml.Node {
	v := "false"
	if b {
		v = "true"
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: v}
}

func intNode(i int) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: fmt.Sprint(i)}
}

// encode writes m as a YAML document with two-space indentation.
func encode(m *yaml.Node) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("YAML encoder failed: %v", r)
		}
	}()
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
