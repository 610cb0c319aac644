package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/stagehand-dev/stagehand/inventory"
)

// backupResult is what `stagehand backup` reports.
type backupResult struct {
	File  string `json:"file"`
	Bytes int64  `json:"bytes"`
	inventory.BackupSummary
}

// runBackup downloads a consistent copy of the running server's
// inventory to -o FILE. The download goes to a temporary file beside
// FILE, which is synced and verified (bbolt's page check, the hosts
// counted) before it is renamed into place: FILE is a good backup or is
// not written at all.
func runBackup(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	co := clientFlags(fs)
	var file string
	fs.StringVar(&file, "o", "", "write the backup here (required)")
	if _, err := parseCommand(fs, args); err != nil {
		return err
	}
	if file == "" {
		return errors.New("backup: -o FILE is required")
	}
	c, err := co.client()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), ".stagehand-backup-*")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	defer tmp.Close()
	// No overall timeout, unlike the other commands: the file may be
	// large. ctx (Ctrl-C) still ends it.
	resp, err := c.open(ctx, &http.Client{}, http.MethodGet, "/backup", "", nil)
	if err != nil {
		return err
	}
	n, err := io.Copy(tmp, resp.Body)
	resp.Body.Close()
	if err != nil {
		// Content-Length makes a cut connection an error here.
		return fmt.Errorf("backup: download cut after %d bytes: %w", n, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	sum, err := inventory.VerifyBackup(tmp.Name())
	if err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	res := backupResult{File: file, Bytes: n, BackupSummary: sum}
	if c.output == "json" {
		return c.printJSON(out, res)
	}
	_, err = fmt.Fprintf(out, "%s: %d bytes, %d hosts, %d profiles, %d leases, verified\n", file, n, sum.Hosts, sum.Profiles, sum.Leases)
	return err
}

// runRestore puts a backup in place as the data dir's database. It works
// on the files, not through the server, which must be stopped: it
// refuses while a server holds the database.
func runRestore(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "/var/lib/stagehand", "the server's data dir")
	pos, err := parseCommand(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("restore: want one FILE (a backup from stagehand backup)")
	}
	sum, kept, err := inventory.Restore(pos[0], *dataDir, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "restored %s into %s: %d hosts, %d profiles, %d leases\n", pos[0], filepath.Join(*dataDir, inventory.DBFile), sum.Hosts, sum.Profiles, sum.Leases)
	if kept != "" {
		fmt.Fprintf(out, "the database it replaced is kept as %s\n", kept)
	}
	return nil
}
