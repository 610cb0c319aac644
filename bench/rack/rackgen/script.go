package main

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// stage2URL finds the chain line of stage 1 and fills in the iPXE settings
// it uses, as iPXE would for host h. Unknown ${...} settings expand to
// nothing, as in iPXE.
func stage2URL(script []byte, h host, fw firmware) (string, error) {
	var line string
	for l := range strings.Lines(string(script)) {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "chain ") && strings.Contains(l, "/ipxe?") {
			line = l
			break
		}
	}
	if line == "" {
		return "", errors.New("stage 1 has no chain to /ipxe")
	}
	var target string
	for f := range strings.FieldsSeq(line) {
		if strings.HasPrefix(f, "http://") {
			target = f
			break
		}
	}
	if target == "" {
		return "", errors.New("stage 1's chain line has no http:// URL")
	}
	platform, buildarch := "pcbios", "i386"
	if fw.arch != 0 {
		platform, buildarch = "efi", "x86_64"
	}
	vals := map[string]string{
		"mac:hexhyp":             strings.ReplaceAll(h.mac.String(), ":", "-"),
		"uuid":                   h.uuidString(),
		"serial:uristring":       url.QueryEscape(h.serial),
		"manufacturer:uristring": url.QueryEscape("Stagehand Labs"),
		"product:uristring":      url.QueryEscape("Rack Sim 1U"),
		"buildarch":              buildarch,
		"platform":               platform,
	}
	return expandSettings(target, vals), nil
}

var settingRe = regexp.MustCompile(`\$\{([^}]*)\}`)

func expandSettings(s string, vals map[string]string) string {
	return settingRe.ReplaceAllStringFunc(s, func(m string) string {
		return vals[m[2:len(m)-1]]
	})
}

// installScript is what a stage-2 install script tells iPXE to fetch.
type installScript struct {
	kernel, initrd, configURL string
}

// parseInstall reads the kernel and initrd lines of a stage-2 install
// script, and config_url= from the kernel's command line.
func parseInstall(script []byte) (installScript, error) {
	var s installScript
	for l := range strings.Lines(string(script)) {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		args := f[1:]
		if i := indexOf(args, "||"); i >= 0 {
			args = args[:i]
		}
		switch f[0] {
		case "kernel":
			if len(args) == 0 {
				continue
			}
			s.kernel = args[0]
			for _, a := range args[1:] {
				if v, ok := strings.CutPrefix(a, "config_url="); ok {
					s.configURL = v
				}
			}
		case "initrd":
			// initrd [--name NAME] URL
			if len(args) > 0 {
				s.initrd = args[len(args)-1]
			}
		}
	}
	switch {
	case !strings.HasPrefix(string(script), "#!ipxe"):
		return s, errors.New("not an iPXE script")
	case s.kernel == "" || s.initrd == "":
		return s, fmt.Errorf("no kernel/initrd line (not an install script?): %.120q", script)
	case s.configURL == "":
		return s, errors.New("kernel line has no config_url=")
	}
	return s, nil
}

func indexOf(ss []string, v string) int {
	for i, s := range ss {
		if s == v {
			return i
		}
	}
	return -1
}

// callbackRe finds the URL the injected after-install step POSTs to.
var callbackRe = regexp.MustCompile(`https?://[^\s"']+/callback/[^\s"'/]+/done`)

// callbackURL checks that doc is cloud-config and returns its completion
// callback.
func callbackURL(doc []byte) (string, error) {
	if !strings.HasPrefix(string(doc), "#cloud-config") {
		return "", fmt.Errorf("user-data does not start with #cloud-config: %.60q", doc)
	}
	u := callbackRe.Find(doc)
	if u == nil {
		return "", errors.New("user-data has no callback URL")
	}
	return string(u), nil
}
