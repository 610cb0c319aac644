package api

import (
	"io"

	"github.com/stagehand-dev/stagehand/inventory"
)

// ArtifactContentForTest is what handleArtifact hands to http.ServeContent.
func ArtifactContentForTest(a *inventory.ArtifactReader) io.ReadSeeker { return artifactContent(a) }
