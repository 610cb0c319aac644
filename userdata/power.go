package userdata

import (
	"strconv"

	"gopkg.in/yaml.v3"
)

// applyPower settles what the host does once the installer is done.
//
// The staging flow is flash, power off, ship, so install.poweroff
// defaults to true, but only when the document says nothing about power:
// Kairos' configuration schema accepts at most one of install.poweroff and
// install.reboot set to true (its PowerManagement oneOf), so a default
// written beside an operator's `reboot: true` would make a document the
// installer refuses. An explicit value is the operator's and is kept; a
// value that is not a YAML boolean is refused rather than replaced.
//
// `reboot` counts wherever the operator put it: Kairos reads
// install.reboot, the Palette installer's example puts it under stylus.
// Only the install block is checked for the pair both true, because only
// there is it the schema's rule; under stylus, "poweroff takes precedence
// over reboot" is the installer's documented order.
//
// The power state is not how stagehand learns an install finished: the
// after-install callback is.
func applyPower(root *yaml.Node, p *problems) {
	inst, ok := childMap(root, "install")
	if !ok {
		p.add("install", "must be a mapping, not a %s", kindName(lookup(root, "install")))
		return
	}
	powerOff, powerOffSet := boolField(inst, "install.poweroff", "poweroff", p)
	reboot, rebootSet := boolField(inst, "install.reboot", "reboot", p)
	_, stylusRebootSet := boolField(lookup(root, "stylus"), "stylus.reboot", "reboot", p)
	if powerOff && reboot {
		p.add("install.poweroff", "must not be true together with install.reboot: true (the installer accepts at most one of them); set one to false")
	}
	if !powerOffSet && !rebootSet && !stylusRebootSet {
		setKey(inst, "poweroff", boolNode(true))
	}
}

// boolField reads m[key] as a YAML boolean. set reports whether the key
// is present at all; a present value that is not true or false is a
// problem named by path.
func boolField(m *yaml.Node, path, key string, p *problems) (v, set bool) {
	n := lookup(m, key)
	if n == nil {
		return false, false
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		p.add(path, "must be true or false, not %s", describe(n))
		return false, true
	}
	b, err := strconv.ParseBool(n.Value)
	if err != nil {
		// yaml.v3 resolves only true/True/TRUE and the false forms to !!bool.
		p.add(path, "must be true or false, not %s", describe(n))
		return false, true
	}
	return b, true
}

// describe names a node for an error message without echoing long
// values: the scalar itself when short, its kind otherwise.
func describe(n *yaml.Node) string {
	switch {
	case n.Kind != yaml.ScalarNode:
		return "a " + kindName(n)
	case isNull(n):
		return "null"
	case n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 || n.ShortTag() == "!!str":
		return strconv.Quote(short(n.Value)) + " (a string)"
	}
	return short(n.Value)
}
