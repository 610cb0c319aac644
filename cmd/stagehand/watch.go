package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/mattn/go-isatty"

	"github.com/stagehand-dev/stagehand/api"
)

// progress is one look at the rack, for watch.
type progress struct {
	total, installed, failed, active int
	stalled, failedNames             []string
}

func summarize(st api.Status) progress {
	p := progress{total: st.Total, installed: st.ByState["installed"], failed: st.ByState["failed"],
		stalled: st.Stalled, failedNames: st.Failed}
	p.active = st.ByState["ready"] + st.ByState["booting"] + st.ByState["installing"]
	return p
}

// done reports whether nothing is left to install: every host is
// installed or failed (discovered hosts wait for an operator, not for
// the rack).
func (p progress) done() bool { return p.total > 0 && p.active == 0 }

// line renders the progress bar: pure, so it has a table test.
func (p progress) line(width int) string {
	if width < 10 {
		width = 10
	}
	filled := 0
	if p.total > 0 {
		filled = p.installed * width / p.total
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[%s%s] %d/%d installed", strings.Repeat("#", filled), strings.Repeat("-", width-filled), p.installed, p.total)
	if p.active > 0 {
		fmt.Fprintf(&b, ", %d in progress", p.active)
	}
	if p.failed > 0 {
		fmt.Fprintf(&b, ", %d failed (%s)", p.failed, strings.Join(p.failedNames, ", "))
	}
	if len(p.stalled) > 0 {
		fmt.Fprintf(&b, ", %d stalled (%s)", len(p.stalled), strings.Join(p.stalled, ", "))
	}
	return b.String()
}

func runWatch(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("watch", flag.ContinueOnError)
	co := clientFlags(fs)
	interval := fs.Duration("interval", 2*time.Second, "how often to look")
	timeout := fs.Duration("timeout", 0, "give up after this long (0: never)")
	if _, err := parseCommand(fs, args); err != nil {
		return err
	}
	c, err := co.client()
	if err != nil {
		return err
	}
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	f, isFile := out.(*os.File)
	tty := isFile && isatty.IsTerminal(f.Fd())
	last := ""
	for {
		var st api.Status
		if err := c.do(ctx, http.MethodGet, "/status", nil, &st); err != nil {
			return err
		}
		p := summarize(st)
		l := p.line(30)
		switch {
		case c.output == "json":
			c.printJSON(out, st)
		case tty:
			fmt.Fprintf(out, "\r\033[K%s", l)
		case l != last:
			fmt.Fprintln(out, l)
		}
		last = l
		if p.done() {
			if tty {
				fmt.Fprintln(out)
			}
			if p.failed > 0 {
				return fmt.Errorf("%d host(s) failed: %s", p.failed, strings.Join(p.failedNames, ", "))
			}
			return nil
		}
		select {
		case <-ctx.Done():
			if tty {
				fmt.Fprintln(out)
			}
			return fmt.Errorf("watch: %w with %d of %d hosts installed", ctx.Err(), p.installed, p.total)
		case <-time.After(*interval):
		}
	}
}
