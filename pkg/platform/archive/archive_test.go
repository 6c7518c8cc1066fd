package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// project makes a small project folder and returns its archive.
func project(t *testing.T) []byte {
	t.Helper()
	src := t.TempDir()
	db := filepath.Join(src, "mlflow.db")
	must(t, os.WriteFile(db, []byte("sqlite bytes"), 0o644))
	arts := filepath.Join(src, "artifacts")
	must(t, os.MkdirAll(filepath.Join(arts, "1", "abc", "artifacts"), 0o755))
	must(t, os.WriteFile(filepath.Join(arts, "1", "abc", "artifacts", "model.pkl"), bytes.Repeat([]byte{0, 1, 2, 255}, 5000), 0o644))
	must(t, os.Symlink("/etc/passwd", filepath.Join(arts, "leak")))
	var buf bytes.Buffer
	must(t, Write(&buf, Project{Meta: []byte(`{"name":"p"}`), DB: db, Artifacts: arts}))
	return buf.Bytes()
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestRoundTripKeepsEveryByteAndNoLink(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "x")
	meta, err := Extract(bytes.NewReader(project(t)), dir)
	must(t, err)
	if string(meta) != `{"name":"p"}` {
		t.Errorf("meta = %s", meta)
	}
	got, err := os.ReadFile(filepath.Join(dir, "artifacts", "1", "abc", "artifacts", "model.pkl"))
	must(t, err)
	if !bytes.Equal(got, bytes.Repeat([]byte{0, 1, 2, 255}, 5000)) {
		t.Error("artifact bytes differ after the round trip")
	}
	if _, err := os.Lstat(filepath.Join(dir, "artifacts", "leak")); !os.IsNotExist(err) {
		t.Errorf("a symlink of the project travelled into the archive: %v", err)
	}
}

// rawArchive builds a .tar.gz by hand, for archives Write never makes.
type rawEntry struct {
	hdr  tar.Header
	body string
}

func rawArchive(t *testing.T, entries ...rawEntry) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		h := e.hdr
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		h.Mode = 0o644
		must(t, tw.WriteHeader(&h))
		if e.body != "" {
			_, err := tw.Write([]byte(e.body))
			must(t, err)
		}
	}
	must(t, tw.Close())
	must(t, gz.Close())
	return buf.Bytes()
}

func TestRefusesBadArchivesAndLeavesNothing(t *testing.T) {
	good := project(t)
	corrupt := append([]byte(nil), good...)
	corrupt[len(corrupt)/2] ^= 0xff
	cases := map[string]struct {
		data []byte
		want string
	}{
		"truncated":    {good[:len(good)*2/3], "truncated"},
		"cut at end":   {good[:len(good)-4], "truncated"},
		"corrupt":      {corrupt, "corrupt"},
		"not gzip":     {[]byte("hello"), "not a gzip"},
		"dot-dot":      {rawArchive(t, rawEntry{hdr: tar.Header{Name: "artifacts/../../evil"}, body: "x"}), "'..'"},
		"absolute":     {rawArchive(t, rawEntry{hdr: tar.Header{Name: "/etc/evil"}, body: "x"}), "absolute"},
		"symlink":      {rawArchive(t, rawEntry{hdr: tar.Header{Name: "artifacts/l", Typeflag: tar.TypeSymlink, Linkname: "/etc"}}), "link"},
		"hardlink":     {rawArchive(t, rawEntry{hdr: tar.Header{Name: "artifacts/l", Typeflag: tar.TypeLink, Linkname: "mlflow.db"}}), "link"},
		"no manifest":  {rawArchive(t, rawEntry{hdr: tar.Header{Name: "mlflow.db"}, body: "x"}, rawEntry{hdr: tar.Header{Name: "export.json"}, body: "{}"}), "no manifest.json"},
		"wrong format": {rawArchive(t, rawEntry{hdr: tar.Header{Name: "manifest.json"}, body: `{"format":"other/9","files":[]}`}), "another version"},
		"unlisted": {rawArchive(t,
			rawEntry{hdr: tar.Header{Name: "mlflow.db"}, body: "x"},
			rawEntry{hdr: tar.Header{Name: "manifest.json"}, body: `{"format":"` + Format + `","files":[]}`}), "not listed"},
		"wrong hash": {rawArchive(t,
			rawEntry{hdr: tar.Header{Name: "mlflow.db"}, body: "x"},
			rawEntry{hdr: tar.Header{Name: "manifest.json"}, body: `{"format":"` + Format + `","files":[{"path":"mlflow.db","size":1,"sha256":"00"}]}`}), "SHA-256"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "x")
			_, err := Extract(bytes.NewReader(c.data), dir)
			var inv *InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("err = %v, want an InvalidError", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %q, want it to say %q", err, c.want)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("the refused archive left %s behind", dir)
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "..", "evil")); !os.IsNotExist(err) {
				t.Error("an entry escaped the folder")
			}
		})
	}
}
