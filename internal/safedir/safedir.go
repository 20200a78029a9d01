// Package safedir makes sure a directory the daemon writes into as root
// (the socket's, the logs') cannot be tampered with by anyone else: it and
// every ancestor must be real directories owned by root; it must be
// writable by nobody else, and an ancestor by no other user (its group may
// write, as Ubuntu's root:syslog /var/log; others only where it is sticky,
// like /tmp).
// Otherwise another local user could swap in a symlink or a file of theirs
// between the daemon's checks and its use of a path.
package safedir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Ensure creates dir (mode perm, parents 0755) if it is missing, then
// checks it and its ancestors. It never changes an existing directory: one
// that exists with the wrong owner or mode may hold anything its owner put
// there, so it is refused for the administrator to look at.
func Ensure(dir string, perm os.FileMode) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("safedir: %w", err)
	}
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return fmt.Errorf("safedir: %w", err)
		}
		if err := os.Mkdir(dir, perm); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("safedir: %w", err)
		}
	}
	return Check(dir)
}

// Check checks dir and its ancestors.
func Check(dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("safedir: %w", err)
	}
	for p, leaf := dir, true; ; p, leaf = filepath.Dir(p), false {
		fi, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("safedir: %w", err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		switch {
		case !ok:
			return fmt.Errorf("safedir: %s: no owner", p)
		case fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("safedir: %s is a symbolic link: refused (give the real path)", p)
		case !fi.IsDir():
			return fmt.Errorf("safedir: %s is not a directory", p)
		case st.Uid != 0:
			return fmt.Errorf("safedir: %s is owned by uid %d, not root: refused", p, st.Uid)
		case leaf && fi.Mode().Perm()&0o022 != 0:
			return fmt.Errorf("safedir: %s is writable by group or others (mode %v): refused", p, fi.Mode().Perm())
		case fi.Mode().Perm()&0o002 != 0 && fi.Mode()&fs.ModeSticky == 0:
			return fmt.Errorf("safedir: %s is writable by others (mode %v): refused", p, fi.Mode().Perm())
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}
