package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// Console logs to a file (not a terminal) carry no colour escapes.
func TestLogWriterPlainWhenNotATerminal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := logWriterTo(f, "console")
	if err != nil {
		t.Fatal(err)
	}
	l := zerolog.New(w)
	l.Error().Str("mac", "aa:bb:cc:00:00:01").Msg("boot failed")
	b, _ := os.ReadFile(f.Name())
	if strings.Contains(string(b), "\x1b[") || !strings.Contains(string(b), "boot failed") || !strings.Contains(string(b), "mac=aa:bb:cc:00:00:01") {
		t.Fatalf("console log to a file: %q", b)
	}
	if _, err := logWriterTo(f, "xml"); err == nil {
		t.Error("--log-format xml accepted")
	}
}
