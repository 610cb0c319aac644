package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/stagehand-dev/stagehand/inventory"
)

// backupResult is what `stagehand backup` reports.
type backupResult struct {
	File  string `json:"file"`
	Bytes int64  `json:"bytes"`
	inventory.BackupSummary
}

func (a *app) backupCommand() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "backup -f FILE",
		Short: "a consistent copy of the inventory, verified",
		Args:  nArgs(0, "no arguments (the file is -f FILE)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return errors.New("backup: -f FILE is required")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			return runBackup(a.ctx, c, file, a.out)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "write the backup here (required)")
	return cmd
}

// runBackup downloads a consistent copy of the running server's
// inventory to file. The download goes to a temporary file beside
// it, which is synced and verified (bbolt's page check, the hosts
// counted) before it is renamed into place: file is a good backup or is
// not written at all.
func runBackup(ctx context.Context, c *client, file string, out io.Writer) error {
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

// restoreCommand puts a backup in place as the data dir's database. It
// works on the files, not through the server, which must be stopped: it
// refuses while a server holds the database.
func (a *app) restoreCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "restore FILE [--data-dir DIR]",
		Short: "put a backup in place (server stopped)",
		Args:  nArgs(1, "FILE (a backup from stagehand backup)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			sum, kept, err := inventory.Restore(args[0], a.opts.dataDir, time.Now())
			if err != nil {
				return err
			}
			db := filepath.Join(a.opts.dataDir, inventory.DBFile)
			if a.opts.output == "json" {
				return printJSON(a.out, map[string]any{"file": args[0], "database": db, "kept": kept, "summary": sum})
			}
			fmt.Fprintf(a.out, "restored %s into %s: %d hosts, %d profiles, %d leases\n", args[0], db, sum.Hosts, sum.Profiles, sum.Leases)
			if kept != "" {
				fmt.Fprintf(a.out, "the database it replaced is kept as %s\n", kept)
			}
			return nil
		},
	}
}
