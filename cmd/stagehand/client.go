package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stagehand-dev/stagehand/api"
)

// client talks to a running server's operator API. The CLI never opens
// the database: that is the server's, and bbolt allows one writer.
type client struct {
	server, token, output string
	http                  *http.Client
}

type clientOpts struct{ server, token, dataDir, output string }

func clientFlags(fs *flag.FlagSet) *clientOpts {
	o := &clientOpts{}
	fs.StringVar(&o.server, "server", "http://127.0.0.1:8080", "stagehand server URL")
	fs.StringVar(&o.token, "token", "", "operator API token (default: read from --data-dir)")
	fs.StringVar(&o.dataDir, "data-dir", "/var/lib/stagehand", "the server's data dir, where it keeps "+tokenFile)
	fs.StringVar(&o.output, "output", "table", "table or json")
	return o
}

func (o *clientOpts) client() (*client, error) {
	if o.output != "table" && o.output != "json" {
		return nil, fmt.Errorf("--output %q: want table or json", o.output)
	}
	tok := o.token
	if tok == "" {
		b, err := os.ReadFile(filepath.Join(o.dataDir, tokenFile))
		if err != nil {
			return nil, fmt.Errorf("no API token: set STAGEHAND_TOKEN or --token, or point --data-dir at the server's data dir (%v)", err)
		}
		tok = strings.TrimSpace(string(b))
	}
	return &client{server: strings.TrimRight(o.server, "/"), token: tok, output: o.output, http: &http.Client{Timeout: 30 * time.Second}}, nil
}

// do sends a request and decodes a JSON answer into out (when non-nil).
func (c *client) do(ctx context.Context, method, path string, body, out any) error {
	raw, err := c.raw(ctx, method, path, body)
	if err != nil || out == nil {
		return err
	}
	return json.Unmarshal(raw, out)
}

func (c *client) raw(ctx context.Context, method, path string, body any) ([]byte, error) {
	if body == nil {
		return c.send(ctx, method, path, "", nil)
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	return c.send(ctx, method, path, "application/json", b)
}

// send is one API call with a body of the given type (none when
// contentType is empty); errors carry the server's message.
func (c *client) send(ctx context.Context, method, path, contentType string, body []byte) ([]byte, error) {
	resp, err := c.open(ctx, c.http, method, path, contentType, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(io.LimitReader(resp.Body, 64<<20))
}

// open sends a request and returns the response if it succeeded, for
// the caller to read and close; otherwise the server's error message.
func (c *client) open(ctx context.Context, hc *http.Client, method, path, contentType string, body []byte) (*http.Response, error) {
	var rd io.Reader
	if contentType != "" {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.server+"/api/v1"+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the stagehand server at %s: %w", c.server, err)
	}
	if resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	var e api.ErrorBody
	if json.Unmarshal(raw, &e) == nil && e.Error.Message != "" {
		if len(e.Error.Rows) > 0 {
			// One line per bad manifest row reads better than one long line.
			msg := fmt.Sprintf("manifest rejected, nothing imported (%d problem(s)):", len(e.Error.Rows))
			for _, r := range e.Error.Rows {
				msg += "\n  " + r.Error()
			}
			return nil, errors.New(msg)
		}
		return nil, errors.New(e.Error.Message)
	}
	return nil, fmt.Errorf("%s %s: %s", method, path, resp.Status)
}

func (c *client) printJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
