package api

import "net/http"

// NewStatusWriterForTest exposes the metrics wrapper to the external tests.
func NewStatusWriterForTest(w http.ResponseWriter) http.ResponseWriter {
	return &statusWriter{ResponseWriter: w}
}
