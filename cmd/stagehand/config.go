package main

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"flag"

	"gopkg.in/yaml.v3"
)

// envName is the environment variable for a flag: --dhcp-mode is
// STAGEHAND_DHCP_MODE.
func envName(flagName string) string {
	return "STAGEHAND_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

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
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if !given["config"] {
		if v, ok := os.LookupEnv(envName("config")); ok {
			fs.Set("config", v)
		}
	}
	configPath = fs.Lookup("config").Value.String()
	file := map[string]any{}
	if configPath != "" {
		raw, err := os.ReadFile(configPath)
		if err != nil {
			return fmt.Errorf("config file: %w", err)
		}
		if err := yaml.Unmarshal(raw, &file); err != nil {
			return fmt.Errorf("config file %s: %w", configPath, err)
		}
		var unknown []string
		for k := range file {
			if fs.Lookup(k) == nil || k == "config" {
				unknown = append(unknown, k)
			}
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			return fmt.Errorf("config file %s: unknown key(s) %s (keys are flag names without dashes in front)", configPath, strings.Join(unknown, ", "))
		}
	}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || given[f.Name] || f.Name == "config" {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", envName(f.Name), v, e)
			}
			return
		}
		// An empty key ("dhcp-router:") decodes as nil: leave the default
		// rather than set the flag to the text "<nil>".
		if v, ok := file[f.Name]; ok && v != nil {
			s := fmt.Sprint(v)
			if list, isList := v.([]any); isList {
				parts := make([]string, len(list))
				for i, p := range list {
					parts[i] = fmt.Sprint(p)
				}
				s = strings.Join(parts, ",")
			}
			if e := fs.Set(f.Name, s); e != nil {
				err = fmt.Errorf("config file key %s=%q: %w", f.Name, s, e)
			}
		}
	})
	return err
}
