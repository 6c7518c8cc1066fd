package gateway

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// asset is one embedded file (Swagger UI under /docs/, the web panel
// under /ui/), with what it takes to serve it with validators (ETag) so
// browsers revalidate cheaply.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

func newAsset(name string, body []byte) asset {
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "text/plain; charset=utf-8" // LICENSE, NOTICE
	}
	sum := sha256.Sum256(body)
	return asset{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
}

// embeddedAssets reads every file below root in fsys, by its path below root.
func embeddedAssets(fsys fs.FS, root string) (map[string]asset, error) {
	assets := map[string]asset{}
	err := fs.WalkDir(fsys, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(p, root+"/")
		assets[name] = newAsset(name, b)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the embedded files under %s: %w", root, err)
	}
	return assets, nil
}

// assetServer answers the files of one embedded set.
type assetServer struct {
	assets  func() (map[string]asset, error)
	headers map[string]string // besides Content-Type, ETag and nosniff
	missing string            // the 404 message; %q is the name asked for
}

func (s assetServer) serve(c *gin.Context, name string) {
	assets, err := s.assets()
	if err != nil {
		writeError(c, err)
		return
	}
	a, ok := assets[name]
	if !ok {
		c.AbortWithStatusJSON(http.StatusNotFound, gin.H{"code": "404", "message": fmt.Sprintf(s.missing, name)})
		return
	}
	h := c.Writer.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("ETag", a.etag)
	h.Set("X-Content-Type-Options", "nosniff")
	for k, v := range s.headers {
		h.Set(k, v)
	}
	http.ServeContent(c.Writer, c.Request, name, time.Time{}, bytes.NewReader(a.body))
}
