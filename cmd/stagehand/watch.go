package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/stagehand-dev/stagehand/api"
	"github.com/stagehand-dev/stagehand/internal/safetext"
	"github.com/stagehand-dev/stagehand/inventory"
)

// progress is one look at the rack, for watch.
type progress struct {
	total, installed, failed, active int
	stalled, failedNames             []string
}

func summarize(st api.Status) progress {
	p := progress{total: st.Total, installed: st.ByState[inventory.StateInstalled.String()], failed: st.ByState[inventory.StateFailed.String()],
		stalled: safeNames(st.Stalled), failedNames: safeNames(st.Failed)}
	for _, s := range inventory.States() {
		// Discovered hosts wait for an operator, not for the rack.
		if s != inventory.StateDiscovered && s != inventory.StateInstalled && s != inventory.StateFailed {
			p.active += st.ByState[s.String()]
		}
	}
	return p
}

// safeNames are the host names of a status, each as cell prints it.
func safeNames(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = safetext.Line(n)
	}
	return out
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

func (a *app) watchCommand() *cobra.Command {
	var interval, timeout time.Duration
	cmd := &cobra.Command{
		Use:   "watch [--interval 1s] [--timeout D]",
		Short: "live progress until every host is installed or failed",
		Long: `Live progress of the rack until every host is installed or failed.
watch follows the server's event stream and re-reads the status when events
arrive, at most once per --interval (bursts coalesce), and once more at the
instant the status says the next live attempt stalls (a stall is time
passing, not an event). It never polls. It ends with an error naming the
failed hosts, if any, or after --timeout.`,
		Args: nArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := a.ctx
			if cmd.Flags().Changed("timeout") {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			return (&watcher{c: c, out: a.out, interval: interval}).run(ctx)
		},
	}
	durationFlag(cmd.Flags(), &interval, "interval", time.Second, "at most one status read per interval while events arrive")
	durationFlag(cmd.Flags(), &timeout, "timeout", 0, "give up after this long (default: never)")
	return cmd
}

// watcher renders the rack's progress from /api/v1/status, re-read when
// the event stream says something happened.
type watcher struct {
	c        *client
	out      io.Writer
	interval time.Duration
	tty      bool
	last     string
	p        progress
	// nextStall is the last status's NextStall: the one change no event
	// announces.
	nextStall time.Time
}

func (w *watcher) run(ctx context.Context) error {
	f, isFile := w.out.(*os.File)
	w.tty = isFile && isatty.IsTerminal(f.Fd())
	if done, err := w.refresh(ctx); done || err != nil {
		return err
	}
	poke := make(chan struct{}, 1)
	streamCtx, endStream := context.WithCancel(ctx)
	defer endStream()
	go w.follow(streamCtx, poke)
	stall := time.NewTimer(0)
	defer stall.Stop()
	last := time.Now()
	for {
		w.armStall(stall)
		select {
		case <-ctx.Done():
			return w.stop(ctx)
		case <-stall.C:
		case <-poke:
			// Coalesce a burst: the next read waits out the interval.
			if wait := w.interval - time.Since(last); wait > 0 {
				select {
				case <-ctx.Done():
					return w.stop(ctx)
				case <-time.After(wait):
				}
			}
			select {
			case <-poke:
			default:
			}
		}
		last = time.Now()
		if done, err := w.refresh(ctx); done || err != nil {
			return err
		}
	}
}

// armStall sets t to fire when the next live attempt stalls, or stops
// it when none is live.
func (w *watcher) armStall(t *time.Timer) {
	t.Stop()
	if w.nextStall.IsZero() {
		return
	}
	// Past the instant by a little, so the server's clock agrees; never
	// sooner than an interval, so a client clock ahead of the server's
	// (the status then names an instant already past here) costs one
	// read per interval, not a loop.
	t.Reset(max(time.Until(w.nextStall)+50*time.Millisecond, w.interval))
}

// follow keeps the event stream open, poking on every event and on each
// (re)connection (events may have passed while it was down); a broken
// stream is reopened after the interval.
func (w *watcher) follow(ctx context.Context, poke chan<- struct{}) {
	signal := func() {
		select {
		case poke <- struct{}{}:
		default:
		}
	}
	for ctx.Err() == nil {
		resp, err := w.c.openEvents(ctx, "", true)
		if err == nil {
			signal()
			readEvents(ctx, resp.Body, func(inventory.StoredEvent) error { signal(); return nil })
			resp.Body.Close()
		}
		select {
		case <-ctx.Done():
		case <-time.After(w.interval):
			signal()
		}
	}
}

// refresh reads and renders the status; done when nothing is left to
// install (an error when hosts failed).
func (w *watcher) refresh(ctx context.Context) (bool, error) {
	var st api.Status
	if err := w.c.do(ctx, http.MethodGet, "/status", nil, &st); err != nil {
		if ctx.Err() != nil {
			return true, w.stop(ctx)
		}
		return true, err
	}
	w.p = summarize(st)
	w.nextStall = st.NextStall
	l := w.p.line(30)
	switch {
	case w.c.output == "json":
		w.c.printJSON(w.out, st)
	case w.tty:
		fmt.Fprintf(w.out, "\r\033[K%s", l)
	case l != w.last:
		fmt.Fprintln(w.out, l)
	}
	w.last = l
	if !w.p.done() {
		return false, nil
	}
	if w.tty {
		fmt.Fprintln(w.out)
	}
	if w.p.failed > 0 {
		return true, fmt.Errorf("%d host(s) failed: %s", w.p.failed, strings.Join(w.p.failedNames, ", "))
	}
	return true, nil
}

func (w *watcher) stop(ctx context.Context) error {
	if w.tty {
		fmt.Fprintln(w.out)
	}
	return fmt.Errorf("watch: %w with %d of %d hosts installed", ctx.Err(), w.p.installed, w.p.total)
}

func (a *app) statusCommand() *cobra.Command {
	return &cobra.Command{
		Use: "status", Short: "counts by state; failed and stalled hosts named", Args: nArgs(0, "no arguments"),
		RunE: a.withClient(func(c *client, _ []string) error {
			var st api.Status
			if err := c.do(a.ctx, http.MethodGet, "/status", nil, &st); err != nil {
				return err
			}
			if c.output == "json" {
				return c.printJSON(a.out, st)
			}
			tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "STATE\tHOSTS")
			for _, s := range inventory.States() {
				fmt.Fprintf(tw, "%s\t%d\n", s, st.ByState[s.String()])
			}
			fmt.Fprintf(tw, "total\t%d\n", st.Total)
			if err := tw.Flush(); err != nil {
				return err
			}
			if len(st.Failed) > 0 {
				fmt.Fprintf(a.out, "failed: %s\n", strings.Join(safeNames(st.Failed), ", "))
			}
			if len(st.Stalled) > 0 {
				fmt.Fprintf(a.out, "stalled: %s\n", strings.Join(safeNames(st.Stalled), ", "))
			}
			return nil
		}),
	}
}
