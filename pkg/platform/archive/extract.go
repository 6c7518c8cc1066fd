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
	"os"
	"path"
	"path/filepath"
	"strings"
)

// InvalidError is an archive that cannot be imported: truncated, corrupt,
// of another format, or with an entry that would land outside its folder.
// The message says which.
type InvalidError struct{ Reason string }

func (e *InvalidError) Error() string { return "invalid project archive: " + e.Reason }

func invalid(format string, args ...any) error {
	return &InvalidError{Reason: fmt.Sprintf(format, args...)}
}

// maxManifest bounds the manifest and export.json, the two entries read
// into memory.
const maxManifest = 64 << 20

// Extract unpacks an archive from r into dir (created, must not exist)
// and checks every entry against the manifest. On any failure dir is
// removed, so nothing is left half-extracted. It returns export.json.
func Extract(r io.Reader, dir string) (meta []byte, err error) {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("extracting archive: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, invalid("not a gzip stream (%v): send the .tar.gz that GET /projects/{id}/export produced", err)
	}
	tr := tar.NewReader(gz)
	got := map[string]Entry{}
	var manifest []byte
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, invalid("the archive is truncated or corrupt: %v", err)
		}
		if manifest != nil {
			return nil, invalid("entry %q follows the manifest, which must be last", hdr.Name)
		}
		name, err := safeName(hdr)
		if err != nil {
			return nil, err
		}
		if hdr.Typeflag == tar.TypeDir {
			continue // folders are made for the files in them
		}
		if _, dup := got[name]; dup {
			return nil, invalid("entry %q appears twice", name)
		}
		if name == ManifestName {
			if manifest, err = readSmall(tr, name); err != nil {
				return nil, err
			}
			continue
		}
		e, err := extractFile(tr, dir, name, hdr.Size)
		if err != nil {
			return nil, err
		}
		got[name] = e
	}
	// A gzip stream cut right after a tar block still ends cleanly for
	// tar; the gzip trailer's checksum and length catch it.
	if _, err := io.Copy(io.Discard, gz); err != nil {
		return nil, invalid("the archive is truncated or corrupt: %v", err)
	}
	if manifest == nil {
		return nil, invalid("no %s at the end: the archive is truncated or was not made by mlpanel", ManifestName)
	}
	if err := check(manifest, got); err != nil {
		return nil, err
	}
	if _, ok := got[DBName]; !ok {
		return nil, invalid("no %s in the archive", DBName)
	}
	if _, ok := got[MetaName]; !ok {
		return nil, invalid("no %s in the archive", MetaName)
	}
	meta, err = os.ReadFile(filepath.Join(dir, MetaName))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", MetaName, err)
	}
	return meta, nil
}

// safeName accepts only regular files and folders whose cleaned name
// stays inside the archive's root and is one the format knows.
func safeName(hdr *tar.Header) (string, error) {
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeDir:
	case tar.TypeSymlink, tar.TypeLink:
		return "", invalid("entry %q is a link (to %q): archives may hold only regular files", hdr.Name, hdr.Linkname)
	default:
		return "", invalid("entry %q is not a regular file (tar type %q)", hdr.Name, string(hdr.Typeflag))
	}
	n := hdr.Name
	if strings.HasPrefix(n, "/") || strings.Contains(n, "\\") || filepath.IsAbs(n) {
		return "", invalid("entry %q has an absolute path", n)
	}
	for _, seg := range strings.Split(strings.TrimSuffix(n, "/"), "/") {
		if seg == ".." {
			return "", invalid("entry %q climbs out of the archive with '..'", n)
		}
	}
	clean := path.Clean(n)
	if clean == "." {
		if hdr.Typeflag == tar.TypeDir {
			return ".", nil
		}
		return "", invalid("entry %q has no name", n)
	}
	if hdr.Typeflag == tar.TypeDir {
		if clean != ArtifactsDir && !strings.HasPrefix(clean, ArtifactsDir+"/") {
			return "", invalid("unexpected folder %q: only %s/ may hold folders", n, ArtifactsDir)
		}
		return clean, nil
	}
	switch {
	case clean == MetaName, clean == DBName, clean == ManifestName:
	case strings.HasPrefix(clean, ArtifactsDir+"/"):
	default:
		return "", invalid("unexpected entry %q: an archive holds %s, %s, %s/ and %s", n, MetaName, DBName, ArtifactsDir, ManifestName)
	}
	return clean, nil
}

func readSmall(r io.Reader, name string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxManifest+1))
	if err != nil {
		return nil, invalid("the archive is truncated or corrupt in %s: %v", name, err)
	}
	if len(b) > maxManifest {
		return nil, invalid("%s is larger than %d bytes", name, maxManifest)
	}
	return b, nil
}

func extractFile(r io.Reader, dir, name string, size int64) (Entry, error) {
	dst := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return Entry{}, fmt.Errorf("extracting %s: %w", name, err)
	}
	// O_EXCL: a file is never written through something already there.
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return Entry{}, fmt.Errorf("extracting %s: %w", name, err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), r)
	if cerr := f.Close(); err == nil && cerr != nil {
		return Entry{}, fmt.Errorf("extracting %s: %w", name, cerr)
	}
	if err != nil {
		return Entry{}, invalid("the archive is truncated or corrupt in %s: %v", name, err)
	}
	if n != size {
		return Entry{}, invalid("%s: %d of %d bytes: the archive is truncated", name, n, size)
	}
	return Entry{Path: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// check compares what was extracted with the manifest, both ways.
func check(raw []byte, got map[string]Entry) error {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return invalid("%s is not valid: %v", ManifestName, err)
	}
	if m.Format != Format {
		return invalid("format %q is not %q: this archive was made by another version of mlpanel", m.Format, Format)
	}
	listed := map[string]bool{}
	for _, e := range m.Files {
		listed[e.Path] = true
		g, ok := got[e.Path]
		switch {
		case !ok:
			return invalid("%s lists %s, which the archive lacks", ManifestName, e.Path)
		case g.Size != e.Size || g.SHA256 != e.SHA256:
			return invalid("%s does not match its SHA-256 in %s: the archive is corrupt", e.Path, ManifestName)
		}
	}
	for p := range got {
		if !listed[p] {
			return invalid("%s is not listed in %s", p, ManifestName)
		}
	}
	return nil
}
