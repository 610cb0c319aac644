package main

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// envName is the environment variable for a flag: --dhcp-mode is
// STAGEHAND_DHCP_MODE.
func envName(flagName string) string {
	return "STAGEHAND_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// flagSet is what fillFlags needs of a parsed flag set: serve's
// standard-library one and the operator commands' pflag one.
type flagSet interface {
	given(name string) bool // set on the command line
	known(name string) bool
	set(name, v string) error
	value(name string) string
	each(fn func(name string))
}

type stdFlags struct {
	fs  *flag.FlagSet
	cli map[string]bool
}

func (s stdFlags) given(n string) bool       { return s.cli[n] }
func (s stdFlags) known(n string) bool       { return s.fs.Lookup(n) != nil }
func (s stdFlags) set(n, v string) error     { return s.fs.Set(n, v) }
func (s stdFlags) value(n string) string     { return s.fs.Lookup(n).Value.String() }
func (s stdFlags) each(fn func(name string)) { s.fs.VisitAll(func(f *flag.Flag) { fn(f.Name) }) }

type pFlags struct{ fs *pflag.FlagSet }

func (p pFlags) given(n string) bool       { return p.fs.Changed(n) }
func (p pFlags) known(n string) bool       { return p.fs.Lookup(n) != nil }
func (p pFlags) set(n, v string) error     { return p.fs.Set(n, v) }
func (p pFlags) value(n string) string     { return p.fs.Lookup(n).Value.String() }
func (p pFlags) each(fn func(name string)) { p.fs.VisitAll(func(f *pflag.Flag) { fn(f.Name) }) }

// parseFlags parses args into fs, then fills every flag not given on
// the command line from its STAGEHAND_* variable, else from the YAML
// file named by --config (keys are flag names). Precedence: flag, then
// environment, then file, then the flag's default.
func parseFlags(fs *flag.FlagSet, args []string) error {
	var configPath string
	if fs.Lookup("config") == nil {
		fs.StringVar(&configPath, "config", "", "YAML config file whose keys are flag names ("+envName("config")+")")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	cli := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { cli[f.Name] = true })
	return fillFlags(stdFlags{fs, cli})
}

// applyEnvAndConfig is parseFlags' second half for a cobra command's
// parsed flags.
func applyEnvAndConfig(fs *pflag.FlagSet) error { return fillFlags(pFlags{fs}) }

// fillFlags fills every flag of fs not given on the command line from
// its STAGEHAND_* variable, else from the --config YAML file. An
// unknown key in the file is an error naming it.
func fillFlags(fs flagSet) error {
	if fs.known("config") && !fs.given("config") {
		if v, ok := os.LookupEnv(envName("config")); ok {
			fs.set("config", v)
		}
	}
	file := map[string]any{}
	if fs.known("config") && fs.value("config") != "" {
		path := fs.value("config")
		raw, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("config file: %w", err)
		}
		if err := yaml.Unmarshal(raw, &file); err != nil {
			return fmt.Errorf("config file %s: %w", path, err)
		}
		var unknown []string
		for k := range file {
			if !fs.known(k) || k == "config" || k == "help" {
				unknown = append(unknown, k)
			}
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			return fmt.Errorf("config file %s: unknown key(s) %s (keys are flag names without dashes in front)", path, strings.Join(unknown, ", "))
		}
	}
	var err error
	fs.each(func(name string) {
		if err != nil || fs.given(name) || name == "config" || name == "help" {
			return
		}
		if v, ok := os.LookupEnv(envName(name)); ok {
			if e := fs.set(name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", envName(name), v, e)
			}
			return
		}
		// An empty key ("dhcp-router:") decodes as nil: leave the default
		// rather than set the flag to the text "<nil>".
		if v, ok := file[name]; ok && v != nil {
			s := fmt.Sprint(v)
			if list, isList := v.([]any); isList {
				parts := make([]string, len(list))
				for i, p := range list {
					parts[i] = fmt.Sprint(p)
				}
				s = strings.Join(parts, ",")
			}
			if e := fs.set(name, s); e != nil {
				err = fmt.Errorf("config file key %s=%q: %w", name, s, e)
			}
		}
	})
	return err
}
