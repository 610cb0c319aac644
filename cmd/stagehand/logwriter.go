package main

import (
	"fmt"
	"io"
	"os"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
)

// logWriter is where the server's log goes for --log-format: "json"
// lines, or "console" text that is coloured only when standard error is
// a terminal. Under systemd, in a file or through a pipe the escape
// codes would be noise in every line.
func logWriter(format string) (io.Writer, error) { return logWriterTo(os.Stderr, format) }

func logWriterTo(f *os.File, format string) (io.Writer, error) {
	switch format {
	case "json":
		return f, nil
	case "console":
		tty := isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())
		return zerolog.ConsoleWriter{Out: f, TimeFormat: "15:04:05.000", NoColor: !tty}, nil
	}
	return nil, fmt.Errorf("--log-format %q: want console or json", format)
}
