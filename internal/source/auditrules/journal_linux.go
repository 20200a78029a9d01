package auditrules

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/contid/contid/internal/source/auditnl"
)

// Kernel is what a Journal changes: kernel audit rules (an
// *auditnl.Client).
type Kernel interface {
	AddRule(auditnl.Rule) error
	DeleteRule(auditnl.Rule) error
	ListRules() ([]auditnl.Rule, error)
}

// ErrBusy: another process holds the state's lock.
var ErrBusy error = &busyError{}

type busyError struct{}

func (*busyError) Error() string { return "auditrules: another contid daemon is using the audit state" }
func (*busyError) Unwrap() error { return unix.EWOULDBLOCK }

// Journal is the crash-safe record of what contid changed in kernel audit
// (see the package documentation). Its methods are for one goroutine.
type Journal struct {
	path  string
	log   *slog.Logger
	crash string // CONTID_TEST_CRASH: see crashAt
	lock  *os.File
	st    state
	// adopted: the state came from a daemon that did not stop cleanly.
	adopted bool
	// lastLost is the lost count to report from; written is the one in the file.
	lastLost, written uint32
}

// NewJournal returns the journal whose state file is path. It does no
// I/O; Adopt starts it. A nil log discards.
func NewJournal(path string, log *slog.Logger) *Journal {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Journal{path: path, log: log, crash: os.Getenv("CONTID_TEST_CRASH")}
}

// Adopt takes the state's lock and records found, the audit status before
// any change, unless the file holds the state of a daemon that did not
// stop cleanly: then that daemon's found settings, rules and lost count
// are kept. It returns the settings to put back at stop. It is meant as
// auditnl.Config.Adopt.
func (j *Journal) Adopt(found auditnl.Status) (auditnl.Status, error) {
	if err := j.takeLock(); err != nil {
		return auditnl.Status{}, err
	}
	boot := bootID()
	orig := found
	j.st = state{Found: settings{found.Enabled, found.BacklogLimit, found.BacklogWaitTime}, Lost: found.Lost}
	prev, err := j.read()
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		j.log.Warn("audit state: unreadable; starting from the state found (rules a killed contid left may stay loaded)", "path", j.path, "err", err)
	case prev.BootID != boot:
		j.log.Info("audit state: from another boot; ignored", "path", j.path)
	default:
		j.adopted = true
		j.st = prev
		orig.Enabled, orig.BacklogLimit, orig.BacklogWaitTime = prev.Found.Enabled, prev.Found.BacklogLimit, prev.Found.BacklogWaitTime
		j.log.Warn("audit state: adopting what a contid daemon that did not stop cleanly left in the kernel",
			"path", j.path, "pid", prev.PID, "rules", len(prev.Rules), "enabled_before", prev.Found.Enabled,
			"backlog_limit_before", prev.Found.BacklogLimit, "backlog_wait_time_before", prev.Found.BacklogWaitTime,
			"lost_reported", prev.Lost, "lost_now", found.Lost)
	}
	j.st.Version, j.st.BootID, j.st.PID = stateVersion, boot, os.Getpid()
	j.lastLost = j.st.Lost
	if err := j.write(); err != nil {
		j.releaseLock()
		return auditnl.Status{}, err
	}
	j.crashAt("adopted")
	return orig, nil
}

// LastLost is the kernel lost count already reported: the one a killed
// predecessor recorded, or the one found at start.
func (j *Journal) LastLost() uint32 { return j.lastLost }

// SetLost records the kernel's lost count once its loss is reported.
func (j *Journal) SetLost(n uint32) error {
	j.lastLost = n
	if n == j.written {
		return nil
	}
	j.st.Lost = n
	return j.write()
}

// Load makes the kernel hold want and returns the rules of want that are
// contid's (the others were loaded by someone else before; they are left
// alone). Recorded rules that are not wanted are deleted; wanted rules
// are recorded before they are added. On an error the rules added so far
// stay recorded: Unload deletes them.
func (j *Journal) Load(k Kernel, want []Rule) ([]Rule, error) {
	wantSet := map[string]bool{}
	for _, w := range want {
		wantSet[key(w.Kernel)] = true
	}
	// The previous run's rules that are no longer wanted.
	recorded := map[string]bool{}
	kept := j.st.Rules[:0:0]
	for _, s := range j.st.Rules {
		x, err := auditnl.ParseRule(s.Wire)
		if err != nil {
			j.log.Warn("audit state: undecodable rule dropped", "rule", s.Text, "err", err)
			continue
		}
		if wantSet[key(x)] {
			kept = append(kept, s)
			recorded[key(x)] = true
			continue
		}
		if err := k.DeleteRule(x); err != nil && !errors.Is(err, unix.ENOENT) {
			return nil, fmt.Errorf("auditrules: delete %q (a killed contid's rule): %w", s.Text, err)
		}
		j.log.Info("audit rules: deleted a rule a killed contid left and the rules file no longer has", "rule", s.Text)
	}
	if len(kept) != len(j.st.Rules) {
		j.st.Rules = kept
		if err := j.write(); err != nil {
			return nil, err
		}
	}
	have, err := k.ListRules()
	if err != nil {
		return nil, fmt.Errorf("auditrules: %w", err)
	}
	haveSet := map[string]bool{}
	for _, h := range have {
		haveSet[key(h)] = true
	}
	var adds []Rule
	for _, w := range want {
		switch {
		case recorded[key(w.Kernel)]:
		case haveSet[key(w.Kernel)]:
			j.log.Info("audit rules: an equal rule is loaded already, not by contid: left to its owner, not deleted at stop", "line", w.Line, "rule", w.Text)
			continue
		default:
			j.st.Rules = append(j.st.Rules, stateRule{Text: w.Text, Wire: w.Kernel.Marshal()})
		}
		adds = append(adds, w)
	}
	// Write-ahead: every rule is recorded before it is added.
	if len(j.st.Rules) != len(kept) {
		if err := j.write(); err != nil {
			return nil, err
		}
	}
	var ours []Rule
	var theirs map[string]bool
	for n, w := range adds {
		err := k.AddRule(w.Kernel)
		switch {
		case err == nil:
		case errors.Is(err, unix.EEXIST) && recorded[key(w.Kernel)]:
			// Left loaded by the killed run: kept.
		case errors.Is(err, unix.EEXIST):
			// Loaded by someone else since the list: theirs.
			if theirs == nil {
				theirs = map[string]bool{}
			}
			theirs[key(w.Kernel)] = true
			continue
		default:
			return nil, fmt.Errorf("auditrules: line %d: %q: %w", w.Line, w.Text, err)
		}
		ours = append(ours, w)
		j.crashAt("added:" + strconv.Itoa(n+1))
	}
	if theirs != nil {
		rs := j.st.Rules[:0:0]
		for _, s := range j.st.Rules {
			if x, err := auditnl.ParseRule(s.Wire); err != nil || !theirs[key(x)] {
				rs = append(rs, s)
			}
		}
		j.st.Rules = rs
		if err := j.write(); err != nil {
			return ours, err
		}
	}
	return ours, nil
}

// Unload deletes every recorded rule (newest first); a rule already gone
// is no error.
func (j *Journal) Unload(k Kernel) error {
	var errs []error
	n := 0
	for i := len(j.st.Rules) - 1; i >= 0; i-- {
		s := j.st.Rules[i]
		x, err := auditnl.ParseRule(s.Wire)
		if err == nil {
			err = k.DeleteRule(x)
		}
		if err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("auditrules: delete %q: %w", s.Text, err))
			continue
		}
		n++
		j.crashAt("deleted:" + strconv.Itoa(n))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	j.st.Rules = nil
	return j.write()
}

// Finish ends the journal: with clean (everything put back) it removes the
// state file; otherwise the file stays for the next start to adopt. It
// releases the lock.
func (j *Journal) Finish(clean bool) error {
	if j.lock == nil {
		return nil
	}
	var err error
	if clean {
		if err = os.Remove(j.path); errors.Is(err, os.ErrNotExist) {
			err = nil
		}
	} else {
		err = j.write()
	}
	j.releaseLock()
	if err != nil {
		return fmt.Errorf("auditrules: %w", err)
	}
	return nil
}

// takeLock takes an exclusive flock on the lock file beside the state
// (never renamed, so the lock holds across rewrites). The kernel drops it
// when the holder dies.
func (j *Journal) takeLock() error {
	if err := os.MkdirAll(filepath.Dir(j.path), 0o755); err != nil {
		return fmt.Errorf("auditrules: %w", err)
	}
	f, err := os.OpenFile(j.path+".lock", os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("auditrules: lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("%w (%s.lock)", ErrBusy, j.path)
		}
		return fmt.Errorf("auditrules: lock %s.lock: %w", j.path, err)
	}
	j.lock = f
	return nil
}

func (j *Journal) releaseLock() {
	if j.lock != nil {
		j.lock.Close() // drops the flock
		j.lock = nil
	}
}

// read reads the state file; it must be a regular file of this user.
func (j *Journal) read() (state, error) {
	f, err := os.OpenFile(j.path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return state{}, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return state{}, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || int(st.Uid) != os.Geteuid() || st.Mode&0o022 != 0 {
		return state{}, fmt.Errorf("%s is not a regular file of uid %d writable only by it", j.path, os.Geteuid())
	}
	var b bytes.Buffer
	if _, err := b.ReadFrom(f); err != nil {
		return state{}, err
	}
	return parseState(b.Bytes())
}

// write replaces the state file atomically: a new file, then rename. No
// fsync: the state is about the running kernel and need not outlive it.
func (j *Journal) write() error {
	b, err := j.st.marshal()
	if err != nil {
		return fmt.Errorf("auditrules: %w", err)
	}
	tmp := j.path + ".new"
	os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("auditrules: write state: %w", err)
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, j.path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("auditrules: write state: %w", err)
	}
	j.written = j.st.Lost
	return nil
}

// crashAt kills the process with SIGKILL at the named point when
// CONTID_TEST_CRASH names it: the end-to-end tests use it to prove that
// a daemon killed there leaves a state the next one adopts. Points:
// "adopted" (state written, nothing changed), "added:N" (after the Nth
// rule added at start), "deleted:N" (after the Nth rule deleted at stop).
func (j *Journal) crashAt(point string) {
	if j.crash != "" && strings.EqualFold(j.crash, point) {
		j.log.Warn("CONTID_TEST_CRASH: killing this process", "point", point)
		unix.Kill(os.Getpid(), unix.SIGKILL)
		select {}
	}
}

// bootID identifies this boot of the kernel.
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
