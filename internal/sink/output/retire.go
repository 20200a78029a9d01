package output

import (
	"cmp"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/contid/contid/internal/contid"
)

// The life of a container's log, when Config.Dir is set:
//
//   - It is created when the first event is routed to the container (its
//     registration record, in the usual routing), never before.
//   - At the container's drop (the op=drop record, written to it last) it
//     is closed, and Dir/<contid> is moved to
//     Dir/dropped/<contid>-<drop time, UTC, ms>, e.g.
//     dropped/77-20261204T030144.123Z, rotated files included. Events of
//     the dropped container that arrive after its drop (records of tasks
//     that exited just before) are appended there.
//   - A contid registered again starts a new Dir/<contid>/audit.log: a
//     container never appends to the log of an earlier one with its id.
//   - Of the dropped directories, the KeepDropped most recent are kept and
//     those dropped more than KeepDroppedFor before the latest drop are
//     removed, oldest first; 0 removes a directory at its drop. So the
//     files on disk are bounded by the live containers plus KeepDropped,
//     however many containers come and go.
//
// A directory in Dir/dropped whose name is not <contid>-<time> is not
// contid's and is left alone.

// droppedDir is Dir's subdirectory of dropped containers' logs. Container
// directories are named by number, so it cannot be one.
const droppedDir = "dropped"

const dropTimeLayout = "20060102T150405.000Z"

type retired struct {
	id  contid.ID
	dir string
	at  int64 // drop time, unix ns
}

// reborn makes a registered contid write to Dir/<contid> again, if it was
// dropped before.
func (o *Output) reborn(id contid.ID) {
	if _, ok := o.retired[id]; !ok {
		return
	}
	if e, ok := o.open[id]; ok {
		o.evict(e)
	}
	delete(o.retired, id)
}

// retire closes the log of container id, dropped at time at, and moves its
// directory aside (or removes it when none are kept).
func (o *Output) retire(id contid.ID, at int64) {
	if e, ok := o.open[id]; ok {
		o.evict(e)
	}
	src, ok := o.retired[id]
	if !ok {
		src = filepath.Join(o.cfg.Dir, id.String())
	}
	delete(o.retired, id)
	if _, err := os.Lstat(src); err != nil {
		return // no event was ever routed to it: there is no log
	}
	if o.cfg.KeepDropped == 0 {
		o.remove(src)
		return
	}
	parent := filepath.Join(o.cfg.Dir, droppedDir)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		o.stats.RetireErrors++
		o.cfg.Log.Error("container log: retire", "contid", id, "err", err)
		return
	}
	base := filepath.Join(parent, id.String()+"-"+time.Unix(0, at).UTC().Format(dropTimeLayout))
	dst := base
	for n := 2; ; n++ {
		err := os.Rename(src, dst)
		if err == nil {
			break
		}
		if (errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY)) && n < 1000 {
			dst = base + "-" + strconv.Itoa(n) // the same contid dropped twice in one millisecond
			continue
		}
		o.stats.RetireErrors++
		o.cfg.Log.Error("container log: retire", "contid", id, "err", err)
		return
	}
	o.stats.Retired++
	o.retired[id] = dst
	o.dropped = append(o.dropped, retired{id: id, dir: dst, at: at})
	o.prune(at)
}

// prune removes the oldest dropped directories beyond KeepDropped and
// those dropped more than KeepDroppedFor before now.
func (o *Output) prune(now int64) {
	for len(o.dropped) > 0 {
		d := o.dropped[0]
		old := o.cfg.KeepDroppedFor > 0 && now-d.at > int64(o.cfg.KeepDroppedFor)
		if len(o.dropped) <= o.cfg.KeepDropped && !old {
			return
		}
		o.dropped = o.dropped[1:]
		if o.retired[d.id] == d.dir {
			if e, ok := o.open[d.id]; ok {
				o.evict(e)
			}
			delete(o.retired, d.id)
		}
		o.remove(d.dir)
		o.stats.RetiredRemoved++
	}
}

func (o *Output) remove(dir string) {
	if err := os.RemoveAll(dir); err != nil {
		o.stats.RetireErrors++
		o.cfg.Log.Error("container log: remove", "dir", dir, "err", err)
	}
}

// loadDropped lists the dropped directories a previous run left, oldest
// first, and applies KeepDropped to them.
func (o *Output) loadDropped() {
	ents, err := os.ReadDir(filepath.Join(o.cfg.Dir, droppedDir))
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			o.cfg.Log.Error("container logs: list dropped", "err", err)
		}
		return
	}
	for _, e := range ents {
		if id, at, ok := parseDropped(e.Name()); ok && e.IsDir() {
			o.dropped = append(o.dropped, retired{id: id, dir: filepath.Join(o.cfg.Dir, droppedDir, e.Name()), at: at})
		}
	}
	slices.SortFunc(o.dropped, func(a, b retired) int {
		return cmp.Or(cmp.Compare(a.at, b.at), strings.Compare(a.dir, b.dir))
	})
	if n := len(o.dropped); n > 0 {
		o.prune(o.dropped[n-1].at)
	}
}

// parseDropped reads <contid>-<drop time>[-n].
func parseDropped(name string) (contid.ID, int64, bool) {
	i := strings.IndexByte(name, '-')
	if i < 0 {
		return 0, 0, false
	}
	id, err := strconv.ParseUint(name[:i], 10, 64)
	if err != nil || contid.ID(id) == contid.Unset {
		return 0, 0, false
	}
	rest := name[i+1:]
	if len(rest) < len(dropTimeLayout) {
		return 0, 0, false
	}
	if tail := rest[len(dropTimeLayout):]; tail != "" {
		if n, err := strconv.Atoi(strings.TrimPrefix(tail, "-")); err != nil || n < 2 || tail[0] != '-' {
			return 0, 0, false
		}
	}
	t, err := time.Parse(dropTimeLayout, rest[:len(dropTimeLayout)])
	if err != nil {
		return 0, 0, false
	}
	return contid.ID(id), t.UnixNano(), true
}
