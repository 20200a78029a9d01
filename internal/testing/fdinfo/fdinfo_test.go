package fdinfo

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestFlags: the flags a file was opened with are read back, and a path
// the process does not hold is reported with the descriptors it does.
func TestFlags(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	for _, tt := range []struct {
		name string
		flag int
	}{
		{"append", os.O_WRONLY | os.O_CREATE | os.O_APPEND},
		{"dsync", os.O_WRONLY | os.O_CREATE | syscall.O_DSYNC},
		{"read", os.O_RDONLY | os.O_CREATE},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := os.OpenFile(path, tt.flag, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			flags, _, ok := Flags(t, "self", path)
			const accmode = syscall.O_ACCMODE | syscall.O_APPEND | syscall.O_DSYNC
			if !ok || flags&accmode != tt.flag&accmode {
				t.Fatalf("flags %#o, ok %v; want %#o", flags&accmode, ok, tt.flag&accmode)
			}
		})
	}
	flags, targets, ok := Flags(t, "self", path+".none")
	if ok || flags != 0 || len(targets) == 0 {
		t.Fatalf("a path not held: flags %#o, ok %v, targets %q", flags, ok, targets)
	}
}
