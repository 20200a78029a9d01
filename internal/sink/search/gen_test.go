package search

import (
	"bufio"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// genConfig describes generated logs: contid's host log with rotations,
// many containers with nested chains, events of several shapes, some
// interleaved, forged and malformed lines, and optionally a torn last line.
type genConfig struct {
	Dir        string
	Containers int
	Bytes      int64 // about, over all files
	Rotations  int   // audit.log.N … audit.log.1 besides audit.log
	Start      int64 // unix seconds of the first event
	Span       int64 // seconds the logs cover
	Seed       int64
	Interleave float64 // fraction of events whose lines mix with the next one's
	Torn       bool
	Pace       int64 // bytes per event, about (to place time); 0: 600
}

type genInfo struct {
	Files   []string
	Parents map[int]int // container → parent (0: none)
	Events  int
}

// mustGenLogs is genLogs for a test: an error fails it.
func mustGenLogs(t testing.TB, c genConfig) genInfo {
	t.Helper()
	info, err := genLogs(c)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func genLogs(c genConfig) (genInfo, error) {
	rng := rand.New(rand.NewSource(c.Seed))
	info := genInfo{Parents: map[int]int{}}
	for i := 1; i <= c.Containers; i++ {
		if i > 3 && rng.Float64() < 0.3 {
			info.Parents[i] = 1 + rng.Intn(i-1)
		} else {
			info.Parents[i] = 0
		}
	}
	chain := func(id int) string {
		var parts []string
		for first := true; id != 0; id = info.Parents[id] {
			if first {
				parts = append(parts, fmt.Sprint(id))
				first = false
			} else {
				parts = append(parts, fmt.Sprintf("^%d", id))
			}
		}
		return strings.Join(parts, ",")
	}
	pace := c.Pace
	if pace == 0 {
		pace = 600
	}
	total := c.Bytes / pace
	if total < 1 {
		total = 1
	}
	perFile := c.Bytes / int64(c.Rotations+1)
	serial := uint64(1000)
	keys := []string{"exec", "files", "net", "priv"}
	event := func(n int64) []string {
		sec := c.Start + n*c.Span/total
		ms := rng.Intn(1000)
		serial++
		st := fmt.Sprintf("msg=audit(%d.%03d:%d):", sec, ms, serial)
		cont := 1 + rng.Intn(c.Containers)
		pid := 1000 + rng.Intn(5000)
		ppid := 1 + rng.Intn(1000)
		uid := []int{0, 0, 0, 1000, 65534}[rng.Intn(5)]
		key := keys[rng.Intn(len(keys))]
		succ := "yes"
		if rng.Intn(5) == 0 {
			succ = "no"
		}
		cid := fmt.Sprintf("type=UNKNOWN[2901] %s pid=%d uid=%d auid=%d ses=3 record=1 contid=%s", st, pid, uid, uid, chain(cont))
		switch r := rng.Intn(100); {
		case r < 45:
			return []string{
				fmt.Sprintf(`type=SYSCALL %s arch=c000003e syscall=59 success=%s exit=0 a0=55d0c2a8e0a0 a1=55d0c2a8e0c8 a2=55d0c2a8e0f0 a3=8 items=2 ppid=%d pid=%d auid=%d uid=%d gid=0 euid=%d suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=3 comm="sh" exe="/usr/bin/sh" subj=unconfined key="%s"`, st, succ, ppid, pid, uid, uid, uid, key),
				cid,
				fmt.Sprintf(`type=EXECVE %s argc=3 a0="sh" a1="-c" a2="true"`, st),
				fmt.Sprintf(`type=CWD %s cwd="/"`, st),
				fmt.Sprintf(`type=PATH %s item=0 name="/usr/bin/sh" inode=1234 dev=08:01 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0`, st),
				fmt.Sprintf(`type=PROCTITLE %s proctitle=7368002D630074727565`, st),
				fmt.Sprintf(`type=EOE %s`, st),
			}
		case r < 75:
			return []string{
				fmt.Sprintf(`type=SYSCALL %s arch=c000003e syscall=257 success=%s exit=3 a0=ffffff9c a1=7ffd a2=0 a3=0 items=1 ppid=%d pid=%d auid=%d uid=%d gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=3 comm="cat" exe="/usr/bin/cat" subj=unconfined key="%s"`, st, succ, ppid, pid, uid, uid, key),
				cid,
				fmt.Sprintf(`type=PATH %s item=0 name="/etc/passwd" inode=99 dev=08:01 mode=0100644 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0`, st),
				fmt.Sprintf(`type=EOE %s`, st),
			}
		case r < 85: // not in a container
			return []string{
				fmt.Sprintf(`type=SYSCALL %s arch=c000003e syscall=42 success=%s exit=0 a0=3 a1=7ffd a2=10 a3=0 items=0 ppid=1 pid=%d auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="curl" exe="/usr/bin/curl" subj=unconfined key="net"`, st, succ, pid),
				fmt.Sprintf(`type=EOE %s`, st),
			}
		case r < 89:
			op := "set"
			if rng.Intn(2) == 0 {
				op = "drop"
			}
			old := "-1"
			if p := info.Parents[cont]; p != 0 {
				old = chain(p)
			}
			if op == "drop" {
				old = chain(cont)
			}
			return []string{fmt.Sprintf(`type=UNKNOWN[2900] %s pid=42 uid=0 auid=4294967295 ses=4294967295 msg='op=%s opid=%d contid=%d old-contid=%s pid=%d uid=0 auid=4294967295 ses=4294967295 comm="runc" exe="/usr/bin/runc" res=success'`, st, op, pid, cont, old, ppid)}
		case r < 93:
			return []string{fmt.Sprintf(`type=UNKNOWN[2905] %s pid=42 uid=0 auid=4294967295 ses=4294967295 msg='nstype=net ns=0:%d old-ns=0:4 pid=%d contid=%s'`, st, rng.Intn(1000), pid, chain(cont))}
		case r < 96:
			return []string{fmt.Sprintf(`type=USER %s pid=%d uid=%d auid=%d ses=3 msg='op=hello contid=%d'`, st, pid, uid, uid, 1+rng.Intn(c.Containers)), cid}
		case r < 98: // a standalone AVC: no EOE, not a terminal record
			return []string{fmt.Sprintf(`type=AVC %s apparmor="DENIED" operation="open" pid=%d comm="cat"`, st, pid)}
		case r < 99:
			return []string{"garbage " + st}
		default: // forged CONTAINER_OP from a contained process
			return []string{fmt.Sprintf(`type=UNKNOWN[2900] %s pid=%d uid=0 auid=0 ses=3 msg='op=set opid=1 contid=%d old-contid=-1 res=success'`, st, pid, 1+rng.Intn(c.Containers)), cid}
		}
	}
	var n int64
	var pending []string
	for f := c.Rotations; f >= 0; f-- {
		name := "audit.log"
		if f > 0 {
			name = fmt.Sprintf("audit.log.%d", f)
		}
		path := filepath.Join(c.Dir, name)
		fh, err := os.Create(path)
		if err != nil {
			return info, err
		}
		w := bufio.NewWriterSize(fh, 1<<20)
		var written int64
		for written < perFile || len(pending) > 0 {
			lines := pending
			pending = nil
			if written < perFile {
				ev := event(n)
				n++
				info.Events++
				if rng.Float64() < c.Interleave && len(lines) == 0 {
					// mix: part of this event, then the next one, then the rest
					next := event(n)
					n++
					info.Events++
					k := 1 + rng.Intn(len(ev))
					lines = append(append(append([]string{}, ev[:k]...), next...), ev[k:]...)
				} else {
					lines = append(lines, ev...)
				}
			}
			for _, l := range lines {
				w.WriteString(l)
				w.WriteByte('\n')
				written += int64(len(l) + 1)
			}
		}
		if f == 0 && c.Torn {
			w.WriteString("type=SYSCALL msg=audit(")
		}
		if err := w.Flush(); err != nil {
			return info, err
		}
		fh.Close()
		info.Files = append(info.Files, path)
	}
	return info, nil
}
