package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/stagehand-dev/stagehand/internal/safetext"
	"github.com/stagehand-dev/stagehand/inventory"
)

// The server's event stream: GET /api/v1/events, NDJSON, one
// inventory.StoredEvent per line; mac= narrows it to one host (its
// stored events first), follow=1 keeps it open for live events. Blank
// lines are heartbeats; a line of kind "dropped" says the server skipped
// events this subscriber was too slow for.

// maxEventLine bounds one line of the stream.
const maxEventLine = 1 << 20

// openEvents opens the stream. The response's headers have arrived when
// it returns; the caller reads and closes the body.
func (c *client) openEvents(ctx context.Context, mac string, follow bool) (*http.Response, error) {
	q := url.Values{}
	if mac != "" {
		q.Set("mac", mac)
	}
	if follow {
		q.Set("follow", "1")
	}
	// No overall timeout: a followed stream lasts until ctx ends.
	return c.open(ctx, &http.Client{}, http.MethodGet, "/events?"+q.Encode(), "", nil)
}

// readEvents calls fn for each event of the stream until it ends, fn
// fails or ctx is done (then ctx's error).
func readEvents(ctx context.Context, body io.Reader, fn func(inventory.StoredEvent) error) error {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 4096), maxEventLine)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
			continue // heartbeat
		}
		var e inventory.StoredEvent
		if err := json.Unmarshal(line, &e); err != nil {
			return fmt.Errorf("event stream: malformed line %.80q: %w", line, err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("event stream: %w", err)
	}
	return nil
}

// eventPrinter writes events as a table (one line each, however many
// lines the detail has) or as NDJSON.
type eventPrinter struct {
	out    io.Writer
	json   bool
	header bool
}

const eventRow = "%-19s  %-7s  %-14s  %s\n"

func (p *eventPrinter) print(e inventory.StoredEvent) error {
	if p.json {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		_, err = p.out.Write(append(safetext.JSON(b), '\n'))
		return err
	}
	if !p.header {
		fmt.Fprintf(p.out, eventRow, "TIME", "ATTEMPT", "KIND", "DETAIL")
		p.header = true
	}
	t, attempt := "-", "-"
	if !e.Time.IsZero() {
		t = e.Time.Local().Format(time.DateTime)
	}
	if e.Kind != "dropped" {
		attempt = fmt.Sprint(e.Attempt)
	}
	detail := safetext.Line(e.Detail)
	if e.Count > 1 {
		detail += fmt.Sprintf("  (%d times, last %s)", e.Count, e.Last.Local().Format(time.DateTime))
	}
	_, err := fmt.Fprintf(p.out, eventRow, t, attempt, safetext.Line(e.Kind), detail)
	return err
}

func (a *app) hostEventsCommand() *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "events MAC [--follow]",
		Short: "a host's events; --follow keeps printing new ones as they happen",
		Args:  nArgs(1, "MAC"),
		RunE: a.withClient(func(c *client, args []string) error {
			p := &eventPrinter{out: a.out, json: c.output == "json"}
			if follow {
				resp, err := c.openEvents(a.ctx, args[0], true)
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				p.print0()
				err = readEvents(a.ctx, resp.Body, p.print)
				switch {
				case a.ctx.Err() != nil:
					return nil // interrupted: the normal end of --follow
				case err == nil:
					return errors.New("host events --follow: the server ended the stream (did it stop?)")
				}
				return err
			}
			var ev []inventory.Event
			if err := c.do(a.ctx, http.MethodGet, "/hosts/"+url.PathEscape(args[0])+"/events", nil, &ev); err != nil {
				return err
			}
			if p.json {
				if ev == nil {
					ev = []inventory.Event{}
				}
				return c.printJSON(a.out, ev) // whole messages, as stored
			}
			p.print0()
			for _, e := range ev {
				if err := p.print(inventory.StoredEvent{Event: e}); err != nil {
					return err
				}
			}
			return nil
		}),
	}
	cmd.Flags().BoolVar(&follow, "follow", false, "after the stored events, print each new one until interrupted (with -o json: NDJSON)")
	return cmd
}

// print0 writes the table's header even when no event follows.
func (p *eventPrinter) print0() {
	if !p.json && !p.header {
		fmt.Fprintf(p.out, eventRow, "TIME", "ATTEMPT", "KIND", "DETAIL")
		p.header = true
	}
}
