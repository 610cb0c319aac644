package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stagehand-dev/stagehand/internal/safetext"
)

// The command line is github.com/spf13/cobra rather than ff or more
// hand-written parsing: bash and zsh completion come with it, persistent
// flags work anywhere on the line ("stagehand --server URL status" and
// "stagehand status --server URL"), and it is the library of kubectl and
// the Palette CLI tools operators already live in, so -h, help and
// flag errors behave as they expect.

// app is the state every operator command shares: the global flags and
// where output goes.
type app struct {
	ctx  context.Context
	out  io.Writer
	opts clientOpts
}

// newRoot builds the whole command tree. ctx ends long-running commands
// (watch, host events --follow); out is standard output.
func newRoot(ctx context.Context, out io.Writer) *cobra.Command {
	a := &app{ctx: ctx, out: out}
	root := &cobra.Command{
		Use:   "stagehand",
		Short: "network-boot provisioning for bare-metal racks",
		Long: `stagehand network-boots bare-metal hosts into the Palette Edge installer
and records when each has been flashed. "stagehand serve" runs the server;
the other commands are its operator CLI, talking to the server's API.

Every flag can also come from STAGEHAND_<FLAG> (STAGEHAND_SERVER,
STAGEHAND_TOKEN, ...) or a --config YAML file whose keys are flag names.
Precedence: flag, then environment, then file, then the default.`,
		SilenceUsage:      true,
		SilenceErrors:     true,
		Args:              cobra.ArbitraryArgs,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.DisableFlagParsing {
				return nil // serve reads its own flags, environment and file
			}
			return applyEnvAndConfig(cmd.Flags())
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				cmd.SetOut(os.Stderr)
				cmd.Usage()
				return errors.New("no command given")
			}
			return fmt.Errorf("unknown command %q (stagehand -h lists them)", args[0])
		},
	}
	root.SetOut(out)
	root.SetErr(os.Stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&a.opts.server, "server", "http://127.0.0.1:8080", "stagehand server URL, or HOST:PORT (http)")
	pf.StringVar(&a.opts.token, "token", "", "operator API token (default: read from --data-dir)")
	pf.StringVar(&a.opts.dataDir, "data-dir", "/var/lib/stagehand", "the server's data dir, where it keeps "+tokenFile)
	pf.StringVarP(&a.opts.output, "output", "o", "table", "output format: table or json")
	pf.String("config", "", "YAML config file whose keys are flag names")
	root.AddCommand(serveCommand(), a.profileCommand(), a.hostCommand(), a.statusCommand(), a.watchCommand(),
		a.backupCommand(), a.restoreCommand(), a.versionCommand(), completionCommand(root))
	return root
}

// group is a command that only holds others: without one it says which
// it takes, and "GROUP help" is its help.
func group(use, short string, verbs ...string) *cobra.Command {
	return &cobra.Command{
		Use: use, Short: short, Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case len(args) == 0:
				return fmt.Errorf("%s: want %s", use, strings.Join(verbs, ", "))
			case args[0] == "help":
				return cmd.Help()
			}
			return fmt.Errorf("%s %s: unknown; want %s", use, args[0], strings.Join(verbs, ", "))
		},
	}
}

// serveCommand hands its arguments to runServe, which parses its own
// flags (and prints them for -h).
func serveCommand() *cobra.Command {
	return &cobra.Command{
		Use:                "serve [flags]",
		Short:              "run DHCP, TFTP and HTTP (serve -h lists its flags)",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runServe(cmd.Context(), args)
		},
	}
}

// version is set at link time (-ldflags "-X main.version=v1.2.3");
// otherwise the module version from the build info.
var version string

// versionInfo is what `stagehand version` reports.
type versionInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"goVersion"`
}

func readVersion() versionInfo {
	v := versionInfo{Version: version, Commit: "unknown", GoVersion: "unknown"}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.GoVersion = bi.GoVersion
	if v.Version == "" {
		v.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				v.Commit += "-dirty"
			}
		}
	}
	if v.Version == "" {
		v.Version = "(devel)"
	}
	return v
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use: "version", Short: "version, commit and Go version of this binary", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			v := readVersion()
			if a.opts.output == "json" {
				return printJSON(a.out, v)
			}
			_, err := fmt.Fprintf(a.out, "stagehand %s\ncommit %s\n%s\n", v.Version, v.Commit, v.GoVersion)
			return err
		},
	}
}

func completionCommand(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh",
		Short: "shell completion script",
		Long: `Prints a completion script. For bash: source <(stagehand completion bash);
for zsh: stagehand completion zsh > "${fpath[1]}/_stagehand".`,
		ValidArgs: []string{"bash", "zsh"},
		Args:      cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] == "bash" {
				return root.GenBashCompletionV2(cmd.OutOrStdout(), true)
			}
			return root.GenZshCompletion(cmd.OutOrStdout())
		},
	}
}

// printJSON writes v as indented JSON, its strings terminal-safe
// (safetext.JSON: the same value, C1 and bidi controls as \u escapes).
func printJSON(out io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = out.Write(append(safetext.JSON(b), '\n'))
	return err
}
