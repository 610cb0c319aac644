package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stagehand-dev/stagehand/api"
	"github.com/stagehand-dev/stagehand/inventory"
)

// showHost prints a host's whole record: every operator field of
// inventory.Fields (secrets masked), then what provisioning recorded.
// Every value is one escaped line (cell); user-data overrides are
// summarised, "host userdata" shows the document.
func showHost(c *client, out io.Writer, h api.HostView) error {
	h = maskSecrets(h)
	if c.output == "json" {
		return c.printJSON(out, h)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	line := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, cell(v)) }
	for _, f := range inventory.Fields {
		v := f.Get(&h.Host)
		if f.Kind == inventory.KindDocument && v != "" {
			v = fmt.Sprintf("%d line(s), %d bytes (host userdata %s shows the rendered document)", strings.Count(strings.TrimRight(v, "\n"), "\n")+1, len(v), h.MAC)
		}
		line(f.JSON, v)
	}
	state := h.State.String()
	if h.Stalled {
		state += " (stalled)"
	}
	line("state", state)
	line("attempt", strconv.Itoa(h.Attempt))
	line("failedMessage", h.FailedMsg)
	line("lastIP", h.LastIP)
	line("lastArch", h.LastArch)
	fa := h.Facts
	line("facts", joinNonEmpty(", ", kv("uuid", fa.UUID), kv("serial", fa.Serial), kv("manufacturer", fa.Manufacturer),
		kv("product", fa.Product), kv("buildarch", fa.BuildArch), kv("platform", fa.Platform)))
	for _, t := range []struct {
		k string
		v time.Time
	}{{"createdAt", h.CreatedAt}, {"updatedAt", h.UpdatedAt}, {"firstBootAt", h.FirstBootAt}, {"bootAt", h.BootAt}, {"installedAt", h.InstalledAt}} {
		v := ""
		if !t.v.IsZero() {
			v = t.v.Local().Format(time.DateTime)
		}
		line(t.k, v)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return showTimeline(out, h.Timeline)
}

// showTimeline prints the latest boot attempt's phases: each one's start
// as an offset from the attempt's start, and its duration.
func showTimeline(out io.Writer, tl []inventory.Attempt) error {
	if len(tl) == 0 {
		return nil
	}
	a := tl[len(tl)-1]
	fmt.Fprintf(out, "\nboot attempt %d (%s), %s, %d boot(s) recorded:\n", a.Attempt, a.Outcome, a.Start.Local().Format(time.DateTime), len(tl))
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PHASE\tSTART\tSECONDS")
	for _, p := range a.Phases {
		fmt.Fprintf(tw, "%s\t+%.3fs\t%.3f\n", cell(string(p.Phase)), p.Start.Sub(a.Start).Seconds(), p.Seconds)
	}
	return tw.Flush()
}

func kv(k, v string) string {
	if v == "" {
		return ""
	}
	return k + "=" + v
}
