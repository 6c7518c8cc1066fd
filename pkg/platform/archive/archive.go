// Package archive is the format of a project that travels: one .tar.gz
// holding the project's metadata, a snapshot of its MLflow database, its
// artifacts and, last, a manifest with the SHA-256 of every other entry.
// The manifest comes last so an archive is written in one pass while it
// streams, and a truncated archive is recognised by its missing manifest.
package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"time"
)

// Format names this layout; readers refuse any other.
const Format = "mlpanel-export/1"

// Entry names inside an archive.
const (
	MetaName     = "export.json"
	DBName       = "mlflow.db"
	ArtifactsDir = "artifacts"
	ManifestName = "manifest.json"
)

// Manifest lists every entry but itself with its size and SHA-256.
type Manifest struct {
	Format string  `json:"format"`
	Files  []Entry `json:"files"`
}

// Entry is one file of the archive.
type Entry struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Writer writes an archive to a stream, hashing as it goes.
type Writer struct {
	gz      *gzip.Writer
	tw      *tar.Writer
	files   []Entry
	modTime time.Time
}

// NewWriter starts an archive on w.
func NewWriter(w io.Writer) *Writer {
	gz := gzip.NewWriter(w)
	return &Writer{gz: gz, tw: tar.NewWriter(gz), modTime: time.Now().UTC().Truncate(time.Second)}
}

// AddBytes adds a small file held in memory.
func (w *Writer) AddBytes(name string, b []byte) error {
	return w.add(name, int64(len(b)), bytes.NewReader(b))
}

// AddFile streams the file at src into the archive as name.
func (w *Writer) AddFile(name, src string) error {
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("archiving %s: %w", name, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("archiving %s: %w", name, err)
	}
	// A file that grows while it is read (an artifact being uploaded) is
	// cut at the size it had, so the tar header stays true.
	return w.add(name, st.Size(), io.LimitReader(f, st.Size()))
}

// AddTree adds every regular file under dir as prefix/<relative path>.
// Symbolic links and other special files are left out: an archive never
// carries them, and a reader refuses them.
func (w *Writer) AddTree(prefix, dir string) error {
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while we walk
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		return w.AddFile(path.Join(prefix, filepath.ToSlash(rel)), p)
	})
	if err != nil {
		return fmt.Errorf("archiving %s: %w", dir, err)
	}
	return nil
}

func (w *Writer) add(name string, size int64, r io.Reader) error {
	hdr := &tar.Header{Name: name, Mode: 0o644, Size: size, ModTime: w.modTime, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
	if err := w.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("archiving %s: %w", name, err)
	}
	h := sha256.New()
	n, err := io.Copy(w.tw, io.TeeReader(r, h))
	if err != nil {
		return fmt.Errorf("archiving %s: %w", name, err)
	}
	if n != size {
		return fmt.Errorf("archiving %s: %d of %d bytes read (the file shrank)", name, n, size)
	}
	w.files = append(w.files, Entry{Path: name, Size: size, SHA256: hex.EncodeToString(h.Sum(nil))})
	return nil
}

// Close writes the manifest and ends the stream.
func (w *Writer) Close() error {
	m, err := json.MarshalIndent(Manifest{Format: Format, Files: w.files}, "", "  ")
	if err != nil {
		return err
	}
	hdr := &tar.Header{Name: ManifestName, Mode: 0o644, Size: int64(len(m)), ModTime: w.modTime, Typeflag: tar.TypeReg}
	if err := w.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("archiving the manifest: %w", err)
	}
	if _, err := w.tw.Write(m); err != nil {
		return fmt.Errorf("archiving the manifest: %w", err)
	}
	if err := w.tw.Close(); err != nil {
		return fmt.Errorf("closing the archive: %w", err)
	}
	return w.gz.Close()
}

// Project is what an export needs to know of the files of a project.
type Project struct {
	Meta      []byte // export.json
	DB        string // a consistent snapshot of the MLflow database
	Artifacts string // the artifact folder
}

// Write streams a whole project archive to out.
func Write(out io.Writer, p Project) error {
	w := NewWriter(out)
	if err := w.AddBytes(MetaName, p.Meta); err != nil {
		return err
	}
	if err := w.AddFile(DBName, p.DB); err != nil {
		return err
	}
	if err := w.AddTree(ArtifactsDir, p.Artifacts); err != nil {
		return err
	}
	return w.Close()
}
