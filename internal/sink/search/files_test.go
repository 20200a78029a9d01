package search

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFiles(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"audit.log", "audit.log.1", "audit.log.10", "audit.log.2", "audit.log.02", "audit.log.x", "other.log"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "containers"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := Files(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		got[i] = filepath.Base(got[i])
	}
	if want := "audit.log.10 audit.log.2 audit.log.1 audit.log"; strings.Join(got, " ") != want {
		t.Errorf("Files = %v, want %s", got, want)
	}
	if _, err := Files(filepath.Join(dir, "containers")); err == nil {
		t.Error("a directory without audit.log gave no error")
	}
	if got, err := Files(filepath.Join(dir, "other.log")); err != nil || len(got) != 1 {
		t.Errorf("a file: %v, %v", got, err)
	}
}
