// Command stagehand network-boots bare-metal hosts into the Palette Edge
// installer and records when each has been flashed. `stagehand serve`
// runs the server; the other subcommands are its operator CLI.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const tokenFile = "api-token"

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

const usage = `stagehand — network-boot provisioning for bare-metal racks

usage:
  stagehand serve [flags]                 run DHCP, TFTP and HTTP
  stagehand profile add NAME --kernel FILE --initrd FILE [--rootfs FILE] [--cmdline ARGS] [--userdata FILE] [--local-boot exit|sanboot] [--install-timeout D]
  stagehand profile add NAME --iso FILE.iso [same flags]   the installer ISO's kernel, initrd and root image
  stagehand profile list|show NAME|delete NAME
  stagehand host add MAC --profile NAME [--serial S] [--name N] [--other-macs MAC,MAC] [--site FILE.yaml] [--userdata FILE]
  stagehand host update MAC [--name N] [--serial S] [--profile P] [--other-macs MAC,MAC] [--site FILE.yaml] [--userdata FILE]
  stagehand host list [--state S] [--profile P] [--tag k=v] [--stalled]
  stagehand host show MAC
  stagehand host events MAC
  stagehand host userdata MAC [--secrets]
  stagehand host reprovision MAC | --state S | --profile P | --tag k=v | --all
  stagehand host assign MAC --profile P | --profile P --state discovered [--tag k=v] | --all
  stagehand host import FILE.csv          rack manifest: all rows or none
  stagehand host export [--format csv|json] [-o FILE] [filters]   the ready-to-ship report
  stagehand host cidata MAC -o FILE.iso   NoCloud seed for virtual-media boots
  stagehand host delete MAC
  stagehand status                        counts by state; failed and stalled hosts named
  stagehand watch [--interval 2s] [--timeout D]   live progress until every host is done
  stagehand backup -o FILE                a consistent copy of the inventory, verified
  stagehand restore FILE [--data-dir DIR]  put a backup in place (server stopped)

Every command takes --output table|json, --server URL (STAGEHAND_SERVER),
--token T (STAGEHAND_TOKEN) and --data-dir DIR (where serve wrote its
api-token). Every flag can also come from STAGEHAND_<FLAG> or a --config
YAML file. "stagehand COMMAND -h" shows a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	var help *helpText
	if errors.As(err, &help) {
		fmt.Print(help.text)
		return
	}
	if errors.Is(err, flag.ErrHelp) {
		return // serve's flag set printed its own help
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "stagehand:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:])
	case "profile":
		return runProfile(ctx, args[1:], out)
	case "host":
		return runHost(ctx, args[1:], out)
	case "status":
		return runStatus(ctx, args[1:], out)
	case "backup":
		return runBackup(ctx, args[1:], out)
	case "restore":
		return runRestore(args[1:], out)
	case "watch":
		return runWatch(ctx, args[1:], out)
	case "help", "-h", "--help":
		fmt.Fprint(out, usage)
		return nil
	}
	fmt.Fprint(os.Stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}
