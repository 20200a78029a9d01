package engine

import (
	"fmt"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/ns"
	"github.com/contid/contid/internal/records"
)

// NSChange applies a task's namespaces after unshare or setns: NS_CREATE
// for a namespace an unshare made, NS_CHANGE for each namespace that
// changed, NS_DESTROY for one no task uses any more. A namespace entered by
// setns that no tracked task used (one kept alive by a bind mount, as `ip
// netns add` leaves it) is only NS_CHANGE. Each record is written only
// where a container is involved (see involved); the state is kept for
// every task, so that a namespace's later use by a container is known.
func (e *Engine) NSChange(ev NSChange) {
	e.stats.Inputs++
	t := e.lookup(ev.PID)
	if t == nil || t.set < 0 {
		e.stats.UnknownExit++
		return
	}
	old := e.sets[t.set].ids
	next := merge(old, &ev.NS)
	if next == old {
		return
	}
	var fresh [ns.NumTypes]bool
	set := e.acquire(next, &fresh)
	if ev.Op != Setns {
		e.nsCreated(ev.Time, t, &old, &next, &fresh)
	}
	crossed := false
	for typ := range next {
		nt := ns.Type(typ)
		if next[typ] == old[typ] {
			continue
		}
		if t.cont == nil && e.containers(nt, next[typ]) {
			crossed = true
		}
		if e.involved(t, nt, next[typ], old[typ]) {
			e.emitNS(ev.Time, records.NSChange, nt, next[typ], old[typ], t.tgid, t.cont)
		}
	}
	if crossed {
		t.crossed = true
	}
	// Move the task's container use to the new network namespace, then
	// release the old set (which may destroy namespaces).
	c := t.cont
	if c != nil {
		e.use(c, set)
	}
	oldSet := t.set
	t.set = set
	e.releaseSet(ev.Time, oldSet, t, c)
}

// releaseSet drops one reference to a set on behalf of t, accounting the
// container use t had in the set's network namespace.
func (e *Engine) releaseSet(now int64, set int32, t *task, c *container) {
	ids := e.sets[set].ids
	if c != nil {
		e.unuse(c, ids[ns.Net])
	}
	if e.sets[set].refs--; e.sets[set].refs > 0 {
		return
	}
	e.dropSet(set)
	for typ, id := range ids {
		if id.IsZero() {
			continue
		}
		k := nsKey{ns.Type(typ), id}
		r := e.nsRefs[k]
		if r.refs--; r.refs > 0 {
			e.nsRefs[k] = r
			continue
		}
		delete(e.nsRefs, k)
		if r.cont {
			e.emitNS(now, records.NSDestroy, ns.Type(typ), id, ns.ID{}, t.tgid, c)
		}
	}
}

// nsCreated writes NS_CREATE for each fresh namespace, created by task by,
// where a container is involved; such a namespace is a container's from
// then on, so its NS_DESTROY follows.
func (e *Engine) nsCreated(now int64, by *task, old, next *ns.Set, fresh *[ns.NumTypes]bool) {
	for typ, f := range fresh {
		nt := ns.Type(typ)
		if f && next[typ] != old[typ] && e.involved(by, nt, next[typ], old[typ]) {
			e.mark(nt, next[typ])
			e.emitNS(now, records.NSCreate, nt, next[typ], old[typ], by.tgid, by.cont)
		}
	}
}

// SeedContainer restores a container object. Its parent must already be
// seeded; a live ID cannot be seeded twice.
func (e *Engine) SeedContainer(ev SeedContainer) error {
	e.stats.Inputs++
	if ev.ID == contid.Unset {
		return fmt.Errorf("engine: seed container: contid 18446744073709551615 means unset")
	}
	if e.conts[ev.ID] != nil {
		return fmt.Errorf("engine: seed container %d: already live", ev.ID)
	}
	var parent *container
	if ev.Parent != contid.Unset {
		if parent = e.conts[ev.Parent]; parent == nil {
			return fmt.Errorf("engine: seed container %d: parent %d not seeded", ev.ID, ev.Parent)
		}
	}
	e.newContainer(ev.ID, ev.Owner, parent, ev.Name, ev.Time)
	return nil
}

// SeedTask adds a task that existed before the engine started. Seed in
// start-time order (parents before children, leaders before threads) so
// parent links and child counts are complete. Seeds write no records.
func (e *Engine) SeedTask(ev SeedTask) error {
	e.stats.Inputs++
	if ev.PID <= 0 || ev.TGID <= 0 {
		return fmt.Errorf("engine: seed task: bad pid %d/%d", ev.PID, ev.TGID)
	}
	if e.lookup(ev.PID) != nil {
		return fmt.Errorf("engine: seed task %d: already tracked", ev.PID)
	}
	t := task{tid: ev.PID, tgid: ev.TGID, start: ev.Start, born: ev.Born, subj: ev.Subject, capcontid: ev.Capcontid}
	if ev.HasContid && ev.Contid != contid.Unset {
		t.cont = e.orphanContainer(ev.Contid, ev.Time)
	}
	if ev.PID != ev.TGID {
		l := e.lookup(ev.TGID)
		if l == nil || l.tid != l.tgid {
			return fmt.Errorf("engine: seed thread %d: leader %d not seeded", ev.PID, ev.TGID)
		}
		l.threads++
		t.capcontid = false
	} else {
		t.threads = 1
		t.ppid, t.pstart = ev.PPID, ev.ParentStart
		if p := e.lookup(ev.PPID); p != nil && p.tid == p.tgid && (t.pstart == 0 || t.pstart == p.start) {
			t.pstart = p.start
			p.children++
		}
	}
	t.set = e.acquire(ev.NS, nil)
	e.insert(t)
	return nil
}
