package auditd

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrNotAuditd is returned when the feed's process is not auditd: nothing
// about its records can be proved.
var ErrNotAuditd = errors.New("auditd: the feed's process is not auditd")

// Prober checks one auditd process.
type Prober struct {
	proc string // /proc, or a test's tree
	pid  int
	tcp  map[uint64]bool // socket inode → is a TCP socket (inodes are not reused while open)
}

// Parent returns a Prober of this process's parent, which must be auditd
// (auditd starts its plugins itself, 3.0 and later).
func Parent() (*Prober, error) { return newProber("/proc", os.Getppid()) }

func newProber(proc string, pid int) (*Prober, error) {
	exe, err := os.Readlink(filepath.Join(proc, strconv.Itoa(pid), "exe"))
	if err != nil {
		return nil, fmt.Errorf("auditd: pid %d: %w", pid, err)
	}
	if filepath.Base(strings.TrimSuffix(exe, " (deleted)")) != "auditd" {
		return nil, fmt.Errorf("%w: pid %d is %s", ErrNotAuditd, pid, exe)
	}
	return &Prober{proc: proc, pid: pid, tcp: map[uint64]bool{}}, nil
}

// Pid is auditd's pid.
func (p *Prober) Pid() int { return p.pid }

// LocalOnly reports whether auditd holds no TCP socket, so that every
// record it has handed on so far came from this host's kernel (as long as
// it has not listened since the first of them: only a reconfiguration by
// root opens and closes its listener). Call it after reading the records
// it is to vouch for.
func (p *Prober) LocalOnly() (bool, error) {
	dir := filepath.Join(p.proc, strconv.Itoa(p.pid), "fd")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false, fmt.Errorf("auditd: pid %d: %w", p.pid, err)
	}
	var socks []uint64
	unknown := false
	for _, e := range ents {
		l, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		ino, ok := socketInode(l)
		if !ok {
			continue
		}
		socks = append(socks, ino)
		if _, seen := p.tcp[ino]; !seen {
			unknown = true
		}
	}
	if unknown {
		tcp := map[uint64]bool{}
		for _, f := range []string{"tcp", "tcp6"} {
			if err := readInodes(filepath.Join(p.proc, strconv.Itoa(p.pid), "net", f), tcp); err != nil && !errors.Is(err, os.ErrNotExist) {
				return false, fmt.Errorf("auditd: pid %d: %w", p.pid, err)
			}
		}
		for _, ino := range socks {
			p.tcp[ino] = tcp[ino]
		}
	}
	local := true
	open := make(map[uint64]bool, len(socks))
	for _, ino := range socks {
		open[ino] = true
		if p.tcp[ino] {
			local = false
		}
	}
	for ino := range p.tcp {
		if !open[ino] {
			delete(p.tcp, ino) // closed: its inode may come back for another socket
		}
	}
	return local, nil
}

// socketInode parses a descriptor's link, "socket:[12345]".
func socketInode(link string) (uint64, bool) {
	s, ok := strings.CutPrefix(link, "socket:[")
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, "]")
	if !ok {
		return 0, false
	}
	ino, err := strconv.ParseUint(s, 10, 64)
	return ino, err == nil
}

func readInodes(path string, into map[uint64]bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return parseInodes(f, into)
}

// parseInodes adds the inodes of a /proc/net/tcp or tcp6 table (the tenth
// column; the first line is the header).
func parseInodes(r io.Reader, into map[uint64]bool) error {
	sc := bufio.NewScanner(r)
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		fs := strings.Fields(sc.Text())
		if len(fs) < 10 {
			return fmt.Errorf("tcp table line with %d fields", len(fs))
		}
		ino, err := strconv.ParseUint(fs[9], 10, 64)
		if err != nil {
			return fmt.Errorf("tcp table inode %q: %w", fs[9], err)
		}
		if ino != 0 { // TIME_WAIT entries have no socket
			into[ino] = true
		}
	}
	return sc.Err()
}
