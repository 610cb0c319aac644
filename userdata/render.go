package userdata

import (
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// CallbackStepName names the after-install step Render injects. A step with
// this name already present in the base or overrides (say, a rendered
// document pasted back in as a profile) is replaced, so a stale token never
// survives into a new attempt.
const CallbackStepName = "stagehand: report install complete"

// Render merges in.Overrides over in.Base, applies the host's computed
// fields, validates the result and returns the YAML document, its first line
// "#cloud-config". Any problem yields a *ValidationError listing all of them.
func Render(in Input) ([]byte, error) {
	var p problems
	root, fe := parseDoc(in.Base, "profile.userdata", MaxDocumentSize)
	if fe != nil {
		p = append(p, *fe)
	}
	over, fe := parseDoc(in.Overrides, "userdata", MaxDocumentSize)
	if fe != nil {
		p = append(p, *fe)
	}
	if len(p) > 0 {
		return nil, p.err()
	}
	merge(root, over)

	if site := applySite(root, in, &p); site != nil {
		checkSite(siteFromDoc(site, &p), true, &p)
	}
	applyPower(root, &p)
	if in.CallbackURL != "" {
		injectCallback(root, in.CallbackURL, &p)
	}
	if len(p) > 0 {
		return nil, p.err()
	}

	out, err := encode(root)
	if err != nil {
		p.add("userdata", "cannot encode the merged document: %v", err)
		return nil, p.err()
	}
	return append([]byte(cloudConfigHeader+"\n"), out...), nil
}

// applySite writes the inventory's fields into stylus.site and returns that
// mapping, or nil when the document's shape leaves no place for them.
//
// `reboot` is not written here: applyPower reads it where the operator
// put it.
func applySite(root *yaml.Node, in Input, p *problems) *yaml.Node {
	stylus, ok := childMap(root, "stylus")
	if !ok {
		p.add("stylus", "must be a mapping, not a %s", kindName(lookup(root, "stylus")))
		return nil
	}
	site, ok := childMap(stylus, "site")
	if !ok {
		p.add(sitePath, "must be a mapping, not a %s", kindName(lookup(stylus, "site")))
		return nil
	}
	s := in.Site
	setIf := func(key, v string) {
		if v != "" {
			setKey(site, key, strNode(v))
		}
	}
	setIf("paletteEndpoint", s.PaletteEndpoint)
	// The inventory's name wins over any name in the YAML: the inventory
	// enforces uniqueness, and a profile-wide name would collide.
	if s.Name != "" {
		setIf("name", s.Name)
	} else {
		setIf("name", in.HostName)
	}
	setIf("registrationURL", s.RegistrationURL)
	setIf("projectUid", s.ProjectUID)
	setIf("edgeHostToken", s.EdgeHostToken)

	if len(s.Tags) > 0 {
		if tags, ok := childMap(site, "tags"); !ok {
			p.add(sitePath+".tags", "must be a mapping of tag name to value, not a %s", kindName(lookup(site, "tags")))
		} else {
			keys := make([]string, 0, len(s.Tags))
			for k := range s.Tags {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				setKey(tags, k, strNode(s.Tags[k]))
			}
		}
	}

	if s.Network != nil {
		applyNetwork(site, *s.Network, p)
	}
	return site
}

// applyNetwork overwrites stylus.site.network field by field, so a profile
// can carry the warehouse's httpProxy and nameserver while each host brings
// its own address. A host that says dhcp drops the static addressing fields
// a profile may have set: they would otherwise linger, unused and confusing.
func applyNetwork(site *yaml.Node, n Network, p *problems) {
	nw, ok := childMap(site, "network")
	if !ok {
		p.add(sitePath+".network", "must be a mapping, not a %s", kindName(lookup(site, "network")))
		return
	}
	set := func(key, v string) {
		if v != "" {
			setKey(nw, key, strNode(v))
		}
	}
	set("type", n.Type)
	set("ipAddress", n.IPAddress)
	if n.Mask != "" {
		// Written as a YAML integer so that it decodes into either a string
		// or an integer field on the installer's side.
		if bits, err := ParsePrefixLen(n.Mask); err == nil {
			setKey(nw, "mask", intNode(bits))
		} else {
			set("mask", n.Mask)
		}
	}
	set("gateway", n.Gateway)
	set("nameserver", n.Nameserver)
	set("httpProxy", n.HTTPProxy)
	if n.Type == "dhcp" {
		for _, k := range []string{"ipAddress", "mask", "gateway"} {
			deleteKey(nw, k)
		}
	}
}

// injectCallback appends the completion report to stages.after-install.
func injectCallback(root *yaml.Node, callbackURL string, p *problems) {
	cmd, reason := callbackCommand(callbackURL)
	if reason != "" {
		p.add("callbackURL", "%s", reason)
		return
	}
	stages, ok := childMap(root, "stages")
	if !ok {
		p.add("stages", "must be a mapping of stage name to steps, not a %s", kindName(lookup(root, "stages")))
		return
	}
	steps := lookup(stages, "after-install")
	switch {
	case steps == nil || isNull(steps):
		steps = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		setKey(stages, "after-install", steps)
	case steps.Kind != yaml.SequenceNode:
		p.add("stages.after-install", "must be a list of steps, not a %s", kindName(steps))
		return
	}
	kept := steps.Content[:0]
	for _, st := range steps.Content {
		if n := lookup(st, "name"); n != nil && n.Kind == yaml.ScalarNode && n.Value == CallbackStepName {
			continue
		}
		kept = append(kept, st)
	}
	step := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	setKey(step, "name", strNode(CallbackStepName))
	setKey(step, "commands", &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: []*yaml.Node{strNode(cmd)}})
	steps.Content = append(kept, step)
}

// callbackCommand builds the one shell line the installer runs after a
// successful install. curl retries while stagehand restarts; busybox-only
// images fall back to wget, which POSTs when given --post-data. The URL is
// written unquoted (the lab's installer stand-in greps for it), so only
// characters with no meaning to the shell are accepted.
func callbackCommand(callbackURL string) (cmd, reason string) {
	u := strings.TrimRight(callbackURL, "/")
	if reason := checkHTTPURL(u); reason != "" {
		return "", reason
	}
	for _, r := range u {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("-._~:/%", r):
		default:
			return "", "must use only letters, digits and -._~:/% (it is written unquoted into a shell command)"
		}
	}
	done := u + "/done"
	return "curl -fsS -X POST --retry 5 --retry-connrefused " + done +
		" || wget -q -O- --post-data= " + done, ""
}
