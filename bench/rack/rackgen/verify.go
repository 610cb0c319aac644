package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// Verdict is what the inventory says after a run.
type Verdict struct {
	N           int      `json:"n"`
	Rows        int      `json:"rows"`      // hosts in `stagehand host export --format json`
	Installed   int      `json:"installed"` // rack hosts installed with attempt 1
	EventsOK    int      `json:"eventsOK"`  // rack hosts whose events include every wanted kind
	Problems    []string `json:"problems,omitempty"`
	NumProblems int      `json:"numProblems"`
}

// wantEvents must all appear in each host's event history.
var wantEvents = []string{"dhcp", "booting", "userdata", "installed"}

func runVerify(args []string) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	n := fs.Int("n", 100, "hosts in the rack")
	export := fs.String("export", "", "output of `stagehand host export --format json`")
	server := fs.String("server", "http://10.250.4.1:8080", "stagehand's URL, for each host's events")
	tokenFile := fs.String("token-file", "", "the server's api-token file")
	out := fs.String("o", "", "write the JSON verdict here (default standard output)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	raw, err := os.ReadFile(*export)
	if err != nil {
		return err
	}
	tok, err := os.ReadFile(*tokenFile)
	if err != nil {
		return err
	}
	v, err := verify(*n, raw, *server, strings.TrimSpace(string(tok)))
	if err != nil {
		return err
	}
	b, _ := json.MarshalIndent(v, "", "  ")
	b = append(b, '\n')
	if *out == "" {
		_, err = os.Stdout.Write(b)
	} else {
		err = os.WriteFile(*out, b, 0o644)
	}
	if err == nil && v.NumProblems > 0 {
		err = fmt.Errorf("inventory inconsistent: %d problem(s), first: %s", v.NumProblems, v.Problems[0])
	}
	return err
}

type exportRow struct {
	MAC     string `json:"mac"`
	State   string `json:"state"`
	Attempt int    `json:"attempt"`
}

func verify(n int, export []byte, server, token string) (*Verdict, error) {
	var rows []exportRow
	if err := json.Unmarshal(export, &rows); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	v := &Verdict{N: n, Rows: len(rows)}
	problem := func(format string, a ...any) {
		v.NumProblems++
		if len(v.Problems) < 20 {
			v.Problems = append(v.Problems, fmt.Sprintf(format, a...))
		}
	}
	byMAC := map[string]exportRow{}
	for _, r := range rows {
		byMAC[r.MAC] = r
	}
	if len(rows) != n {
		problem("export has %d hosts, want %d", len(rows), n)
	}
	for i := range n {
		mac := rackHost(i).mac.String()
		r, ok := byMAC[mac]
		switch {
		case !ok:
			problem("%s: missing from the export", mac)
		case r.State != "installed" || r.Attempt != 1:
			problem("%s: state %s attempt %d, want installed attempt 1", mac, r.State, r.Attempt)
		default:
			v.Installed++
		}
	}

	// Events: one GET per host, a few at a time.
	c := &http.Client{Timeout: 30 * time.Second}
	var mu sync.Mutex
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range n {
		mac := rackHost(i).mac.String()
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			missing, err := missingEvents(c, server, token, mac)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				problem("%s: events: %v", mac, err)
			case len(missing) > 0:
				problem("%s: no %s event", mac, strings.Join(missing, ", "))
			default:
				v.EventsOK++
			}
		})
	}
	wg.Wait()
	return v, nil
}

func missingEvents(c *http.Client, server, token, mac string) ([]string, error) {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, server+"/api/v1/hosts/"+mac+"/events", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s", resp.Status)
	}
	var ev []struct {
		Kind string `json:"kind"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ev); err != nil {
		return nil, err
	}
	kinds := make([]string, len(ev))
	for i, e := range ev {
		kinds[i] = e.Kind
	}
	return missingKinds(kinds), nil
}

// missingKinds returns the wanted event kinds absent from kinds.
func missingKinds(kinds []string) []string {
	have := map[string]bool{}
	for _, k := range kinds {
		have[k] = true
	}
	var miss []string
	for _, w := range wantEvents {
		if !have[w] {
			miss = append(miss, w)
		}
	}
	return miss
}
