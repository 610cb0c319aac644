package userdata_test

import (
	"strings"
	"testing"

	"github.com/kairos-io/kairos-sdk/schema"
	"gopkg.in/yaml.v3"

	"github.com/stagehand-dev/stagehand/userdata"
)

// kairosValid runs a document through the installer's own configuration
// schema (kairos-sdk's schema package, the validator `kairos-agent
// validate` uses) and returns its verdict.
func kairosValid(t *testing.T, doc []byte) error {
	t.Helper()
	kc, err := schema.NewConfigFromYAML(string(doc), schema.RootSchema{})
	if err != nil {
		t.Fatalf("kairos cannot parse the document: %v\n%s", err, doc)
	}
	if !kc.HasHeader() {
		t.Fatalf("kairos finds no #cloud-config header:\n%s", doc)
	}
	if kc.IsValid() {
		return nil
	}
	return kc.ValidationError
}

// Rendered user-data must pass the installer's validator whatever the
// operator wrote about power: the default poweroff may never land beside
// an explicit reboot (the schema's PowerManagement oneOf).
func TestRenderPassesKairosSchema(t *testing.T) {
	// Kairos' root schema requires at least one user; Palette documents
	// usually create theirs in stages, so the base carries one here.
	const base = "#cloud-config\nusers:\n  - name: kairos\n    passwd: kairos\nstylus:\n  site:\n    paletteEndpoint: api.spectrocloud.com\n"
	tests := []struct {
		name       string
		base, over string
		poweroff   any // install.poweroff in the output, nil for absent
		reboot     any
	}{
		{"default", "", "", true, nil},
		{"explicit reboot", "install:\n  reboot: true\n", "", nil, true},
		{"reboot under stylus", "  reboot: true\n", "", nil, nil},
		{"explicit poweroff false", "install:\n  poweroff: false\n", "", false, nil},
		{"explicit poweroff true", "install:\n  poweroff: true\n", "", true, nil},
		{"reboot false", "install:\n  reboot: false\n", "", nil, false},
		{"poweroff false and reboot", "install:\n  poweroff: false\n  reboot: true\n", "", false, true},
		{"override turns poweroff into reboot", "install:\n  poweroff: true\n", "install:\n  poweroff: false\n  reboot: true\n", false, true},
		{"override reboot over an empty install", "install:\n  device: /dev/sda\n", "install:\n  reboot: true\n", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc, err := userdata.Render(userdata.Input{
				Base: []byte(base + tc.base), Overrides: []byte(tc.over), HostName: "edge-1",
				CallbackURL: "http://10.0.0.1:8080/callback/tok",
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := kairosValid(t, doc); err != nil {
				t.Fatalf("the installer's schema refuses the rendered document: %v\n%s", err, doc)
			}
			var v struct {
				Install map[string]any `yaml:"install"`
			}
			if err := yaml.Unmarshal(doc, &v); err != nil {
				t.Fatal(err)
			}
			if got := v.Install["poweroff"]; got != tc.poweroff {
				t.Errorf("install.poweroff = %v, want %v\n%s", got, tc.poweroff, doc)
			}
			if got := v.Install["reboot"]; got != tc.reboot {
				t.Errorf("install.reboot = %v, want %v\n%s", got, tc.reboot, doc)
			}
		})
	}
}

// The schema check above can fail: the pair both true, which Render
// refuses, is refused by the installer's validator too, and so is a
// poweroff that is not a boolean.
func TestKairosSchemaRefusesWhatRenderRefuses(t *testing.T) {
	const base = "#cloud-config\nusers:\n  - name: kairos\n    passwd: kairos\nstylus:\n  site:\n    paletteEndpoint: api.spectrocloud.com\n"
	for _, install := range []string{
		"install:\n  poweroff: true\n  reboot: true\n",
		"install:\n  poweroff: maybe\n",
		"install:\n  poweroff: 7\n",
	} {
		if kairosValid(t, []byte(base+install)) == nil {
			t.Errorf("the installer's schema accepts %q; the test above could not fail", install)
		}
		_, err := userdata.Render(userdata.Input{Base: []byte(base + install)})
		if err == nil || !strings.Contains(err.Error(), "install.poweroff") {
			t.Errorf("Render(%q) = %v, want an error naming install.poweroff", install, err)
		}
	}
}
