package search

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/contid/contid/internal/contid"
)

// TestForgedSidecarIgnored attacks the index as a local user who can
// write beside a log root searches: a sidecar whose filters claim that no
// block holds the container would hide its events. Root's search must not
// trust a sidecar, or an index directory, that another user owns or that
// others may write.
func TestForgedSidecarIgnored(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("CI runs as root; this test chowns files")
		}
		t.Skip("needs root to chown files")
	}
	dir := t.TempDir()
	info := mustGenLogs(t, genConfig{Dir: dir, Containers: 20, Bytes: 64 << 10, Start: 1795687200, Span: 600, Seed: 5})
	q := Query{Contids: []contid.ID{3}}
	want := collect(t, info.Files, &q, Options{NoIndex: true})
	if want == "" {
		t.Fatal("the generated log holds no event of container 3")
	}
	if _, err := Rebuild(info.Files, 1024); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(info.Files[0])
	dev, ino := fileID(fi)
	sp := sidecarPath(info.Files[0], dev, ino)
	data, err := os.ReadFile(sp)
	if err != nil {
		t.Fatal(err)
	}
	ix, err := UnmarshalIndex(data)
	if err != nil {
		t.Fatal(err)
	}
	ix.decodeAll()
	for _, blk := range ix.blocks { // the forgery: no block holds anything
		blk.phantoms()
		blk.bloom = make([]byte, len(blk.bloom))
	}
	forged := ix.Marshal()
	idxDir := filepath.Dir(sp)
	cases := []struct {
		name  string
		setup func()
	}{
		{"sidecar of another user", func() { os.Chown(sp, 65534, 65534) }},
		{"sidecar others may write", func() { os.Chmod(sp, 0o666) }},
		{"directory of another user", func() { os.Chown(idxDir, 65534, 65534) }},
		{"directory others may write", func() { os.Chmod(idxDir, 0o777) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			os.Chown(idxDir, 0, 0)
			os.Chmod(idxDir, 0o700)
			if err := os.WriteFile(sp, forged, 0o600); err != nil {
				t.Fatal(err)
			}
			os.Chown(sp, 0, 0)
			os.Chmod(sp, 0o600)
			// Trusted, the forgery would hide the events: the test can fail.
			if got := collect(t, info.Files, &q, Options{ReadOnly: true}); got == want {
				t.Fatal("the forged sidecar, trusted, did not change the answer: the test proves nothing")
			}
			c.setup()
			if got := collect(t, info.Files, &q, Options{ReadOnly: true}); got != want {
				t.Errorf("search trusted a forged sidecar: %d bytes, want %d", len(got), len(want))
			}
		})
	}

	// The index directory replaced by a symbolic link to a directory that
	// holds the forgery: neither read nor written through.
	os.RemoveAll(idxDir)
	evil := t.TempDir()
	if err := os.WriteFile(filepath.Join(evil, filepath.Base(sp)), forged, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(evil, idxDir); err != nil {
		t.Fatal(err)
	}
	if got := collect(t, info.Files, &q, Options{}); got != want {
		t.Errorf("search followed a symbolic link to a forged sidecar")
	}
	if b, _ := os.ReadFile(filepath.Join(evil, filepath.Base(sp))); string(b) != string(forged) {
		t.Errorf("search wrote through a symbolic link")
	}
	if ents, _ := os.ReadDir(evil); len(ents) != 1 {
		t.Errorf("search created files through a symbolic link: %v", ents)
	}
}
