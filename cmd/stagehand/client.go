package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stagehand-dev/stagehand/api"
)

// client talks to a running server's operator API. The CLI never opens
// the database: that is the server's, and bbolt allows one writer.
type client struct {
	server, token, output string
	http                  *http.Client
}

type clientOpts struct{ server, token, dataDir, output string }

// checkOutput validates --output, for commands that need no server.
func (a *app) checkOutput() error {
	if o := a.opts.output; o != "table" && o != "json" {
		return fmt.Errorf("--output %q: want table or json", o)
	}
	return nil
}

// client checks the global flags and returns an API client.
// withClient is a command's RunE that needs an API client: it builds
// the client from the global flags, then runs fn with it.
func (a *app) withClient(fn func(c *client, args []string) error) func(*cobra.Command, []string) error {
	return func(_ *cobra.Command, args []string) error {
		c, err := a.client()
		if err != nil {
			return err
		}
		return fn(c, args)
	}
}

func (a *app) client() (*client, error) {
	if err := a.checkOutput(); err != nil {
		return nil, err
	}
	o := a.opts
	server, err := serverURL(o.server)
	if err != nil {
		return nil, err
	}
	tok := o.token
	if tok == "" {
		b, err := os.ReadFile(filepath.Join(o.dataDir, tokenFile))
		if err != nil {
			return nil, fmt.Errorf("no API token: set STAGEHAND_TOKEN or --token, or point --data-dir at the server's data dir (%v)", err)
		}
		tok = strings.TrimSpace(string(b))
	}
	return &client{server: server, token: tok, output: o.output, http: &http.Client{Timeout: 30 * time.Second}}, nil
}

// serverURL reads --server: a URL, or HOST:PORT meaning http://HOST:PORT.
func serverURL(s string) (string, error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("--server %q (STAGEHAND_SERVER): %s; want http://HOST:PORT, https://HOST:PORT or HOST:PORT", s, why)
	}
	t := strings.TrimSpace(s)
	if t == "" {
		return bad("empty")
	}
	if !strings.Contains(t, "://") {
		t = "http://" + t
	}
	u, err := url.Parse(t)
	switch {
	case err != nil:
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return bad(err.Error())
	case u.Scheme != "http" && u.Scheme != "https":
		return bad("scheme " + u.Scheme + " is not http or https")
	case u.Host == "" || u.Hostname() == "":
		return bad("no host")
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return bad("a query, fragment or user name has no place here")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return bad("port " + p + " is not 1-65535")
		}
	}
	return strings.TrimRight(u.String(), "/"), nil
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

func (c *client) printJSON(out io.Writer, v any) error { return printJSON(out, v) }
