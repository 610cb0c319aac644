package api

import (
	"net/http"
	"path/filepath"
	"time"
)

// backup answers with a consistent copy of the inventory database, taken
// while the server goes on writing: the file a data dir's stagehand.db
// can be replaced with (stop the server first). The copy is made in the
// data dir, so on the database's own filesystem, and is gone once served.
func (s *Server) backup(w http.ResponseWriter, r *http.Request) {
	f, n, err := s.cfg.Store.Backup(filepath.Dir(s.cfg.Store.Path()))
	if err != nil {
		s.cfg.Log.Error().Err(err).Msg("inventory backup failed")
		writeError(w, http.StatusInternalServerError, "backup", err.Error())
		return
	}
	defer f.Close()
	name := "stagehand-" + s.cfg.Now().UTC().Format("20060102T150405Z") + ".db"
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	// ServeContent sets Content-Length, so a cut download is an error at
	// the client, not a short file.
	http.ServeContent(w, r, name, time.Time{}, f)
	s.cfg.Log.Info().Int64("bytes", n).Str("remote", r.RemoteAddr).Msg("inventory backup served")
}
