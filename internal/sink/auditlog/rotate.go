package auditlog

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
)

// Rotate rotates the log now, as reaching MaxBytes does: by MaxAction
// KeepLogs's rule if that is the action, by NumLogs otherwise (auditd
// rotates on SIGUSR1 the same way). It resumes a suspended Writer. With
// NumLogs 1 and another action than KeepLogs it refuses with
// ErrNoRotation. On failure (ErrRotate) the log goes on in the current
// file.
func (w *Writer) Rotate() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	if w.cfg.MaxAction != KeepLogs && w.cfg.NumLogs < 2 {
		return fmt.Errorf("%w: %s", ErrNoRotation, w.cfg.Path)
	}
	return w.rotate()
}

// rotate renames the logs and opens a new current file.
//
// It differs from auditd's in two ways, both so that a rotation that fails
// half-way and is retried at every line cannot eat the old logs: it
// shifts only up to the first missing number (auditd shifts all of them,
// overwriting the oldest, even when there is a gap), and it stops at the
// first rename that fails (auditd goes on). In a normal run both rotate
// identically. Logs beyond NumLogs are removed after a rotation (auditd
// removes them when it starts).
func (w *Writer) rotate() error {
	var errs []error
	if w.f != nil {
		// The rotated file gets everything accepted so far, on disk,
		// read-only. Lines that cannot be written now stay buffered for
		// the new file.
		if err := w.flushBuf(); err != nil {
			errs = append(errs, err)
		}
		if w.cfg.Flush != FlushNone {
			if err := w.fsync(); err != nil {
				errs = append(errs, err)
			}
		}
		if err := w.f.Chmod(w.cfg.Mode &^ 0o222); err != nil {
			w.log.Warn("audit log: cannot make the rotated file read-only", "err", err)
		}
	}
	failed := func(err error) error {
		w.st.rotateErrors.Add(1)
		err = fmt.Errorf("%w: %w", ErrRotate, err)
		w.log.Error("audit log rotation failed; writing on to the current file", "err", err)
		return errors.Join(append(errs, err)...)
	}

	limit := 0 // KeepLogs: no limit
	if w.cfg.MaxAction != KeepLogs {
		limit = w.cfg.NumLogs - 1
	}
	renamed := w.shift(limit)
	if renamed == nil {
		renamed = os.Rename(w.cfg.Path, w.rotated(1))
		if errors.Is(renamed, fs.ErrNotExist) {
			renamed = nil // gone already (moved away, or never created)
		}
	}
	if renamed != nil {
		if w.f != nil {
			_ = w.f.Chmod(w.cfg.Mode) // still the current file
		}
		return failed(renamed)
	}
	w.st.rotations.Add(1)
	if limit > 0 {
		w.removeExcess(limit + 1)
	}
	if w.cfg.Flush != FlushNone {
		if err := w.syncDir(); err != nil {
			w.log.Warn("audit log: cannot fsync the directory after rotating", "err", err)
		}
	}

	f, size, err := w.openFile()
	if err != nil {
		// Lines go on into the file just rotated (now Path.1, read-only
		// but open for writing) until a reopen works: misnamed, not
		// lost.
		w.stale = w.f != nil
		return failed(err)
	}
	w.log.Info("audit log rotated", "rotations", w.st.rotations.Load())
	errs = append(errs, w.switchTo(f, size))
	return errors.Join(errs...)
}

// shift frees the name Path.1: it renames Path.(k-1) → Path.k, …,
// Path.1 → Path.2, where Path.k is the first name not in use, or, if all
// of Path.1 … Path.(limit-1) are, Path.limit (which is then overwritten).
// limit 0 means no limit.
func (w *Writer) shift(limit int) error {
	k := 1
	for limit == 0 || k < limit {
		_, err := os.Lstat(w.rotated(k))
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return err
		}
		k++
	}
	for i := k; i > 1; i-- {
		if err := os.Rename(w.rotated(i-1), w.rotated(i)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// removeExcess removes Path.from, Path.from+1, … up to the first missing
// one: logs left over from a larger NumLogs.
func (w *Writer) removeExcess(from int) {
	for i := from; ; i++ {
		name := w.rotated(i)
		err := os.Remove(name)
		if errors.Is(err, fs.ErrNotExist) {
			return
		}
		if err != nil {
			w.log.Error("audit log: cannot remove a log beyond NumLogs", "file", name, "err", err)
			return
		}
		w.log.Warn("audit log: removed a log beyond NumLogs", "file", name, "num_logs", w.cfg.NumLogs)
	}
}

// reopenStale opens Path again after a rotation whose reopen failed.
func (w *Writer) reopenStale() error {
	f, size, err := w.openFile()
	if err != nil {
		w.st.rotateErrors.Add(1)
		return fmt.Errorf("%w: %w", ErrRotate, err)
	}
	return w.switchTo(f, size)
}

// rotated returns the name of the i-th rotated log, Path.i.
func (w *Writer) rotated(i int) string { return w.cfg.Path + "." + strconv.Itoa(i) }
