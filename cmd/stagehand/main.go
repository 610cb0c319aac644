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

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return // serve's flag set printed its own help
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "stagehand:", err)
		os.Exit(1)
	}
}

// run runs one command line; the tests call it with their own out.
func run(ctx context.Context, args []string, out io.Writer) error {
	root := newRoot(ctx, out)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}
