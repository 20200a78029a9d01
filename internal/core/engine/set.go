package engine

import (
	"errors"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/ns"
)

// SetContid applies a registration request with the checks of spec §3 in
// their order; the first failure wins. Every attempt writes CONTAINER_OP;
// a success also writes NS_INFO. It returns the target's new chain.
//
// contid's refinements of the checks, for a helper acting for its parent:
//   - rule 3 also accepts the capcontid flag of the orchestrator the caller
//     acts for (the helper is the orchestrator's hands), but only when the
//     caller is in the orchestrator's own container: a contained process can
//     never borrow an orchestrator outside its container (EPERM);
//   - nesting (rule 6) means the orchestrator is not the owner of the
//     target's container and lives in that container itself. Membership is
//     acquired only by descent from a registered task, so this implies
//     descent from the owner, keeps working after the owner exits, and never
//     lets an outside descendant of the owner pull a task out of its
//     container.
//
// After rule 7, a registration that would create a container for an
// orchestrator that already owns Config.MaxPerOwner live ones, asked by a
// caller without CAP_AUDIT_CONTROL, is EDQUOT: capcontid lets a process
// register, not fill the daemon and the disk with containers.
func (e *Engine) SetContid(ev SetContid) (contid.Chain, error) {
	e.stats.Inputs++
	if e.requests != nil {
		defer e.requests(ev)
	}
	tgt, caller, orch, c, err := e.checkSet(&ev)
	var old contid.Chain
	if tgt != nil && tgt.cont != nil {
		old = tgt.cont.chain
	}
	if err == nil && e.kernel != nil {
		id, _ := contid.Parse(ev.Value)
		if kerr := e.kernel.Tag(tgt.ref(), id); kerr != nil {
			err = kernelRefusal(kerr)
		}
	}
	if err == nil {
		c = e.join(ev.Time, tgt, orch, c, &ev)
	}
	e.emitSet(&ev, tgt, caller, orch, old, err)
	if err != nil {
		return nil, err
	}
	e.emitNSInfo(ev.Time, tgt, c)
	return c.chain, nil
}

func (e *Engine) checkSet(ev *SetContid) (tgt, caller, orch *task, c *container, err error) {
	tgt, caller, orch, err = e.resolve(ev.Target, ev.Caller, ev.ForParent)
	if err != nil {
		return
	}
	id, perr := contid.Parse(ev.Value)
	switch {
	case errors.Is(perr, contid.ErrRange):
		return tgt, caller, orch, nil, refuse(unix.ERANGE, "contid "+quoteShort(ev.Value)+" does not fit in 64 bits")
	case errors.Is(perr, contid.ErrUnset):
		return tgt, caller, orch, nil, refuse(unix.EINVAL, "18446744073709551615 means unset; a contid cannot be unset")
	case perr != nil:
		return tgt, caller, orch, nil, refuse(unix.EINVAL, "contid "+quoteShort(ev.Value)+" is not an unsigned decimal number")
	}
	if err = e.permit(caller, orch, ev.ForParent, ev.CallerCap); err != nil {
		return
	}
	if tgt.children > 0 {
		return tgt, caller, orch, nil, refuse(unix.EBUSY, "process "+itoa(tgt.tgid)+" already has children")
	}
	if err = e.lineage(tgt, caller, orch); err != nil {
		return
	}
	if tgt.cont != nil && (tgt.cont.owner == orch.ref() || orch.cont != tgt.cont) {
		return tgt, caller, orch, nil, refuse(unix.EEXIST, "process "+itoa(tgt.tgid)+" already has contid "+tgt.cont.chain.String())
	}
	if c = e.conts[id]; c != nil && c.owner != orch.ref() {
		return tgt, caller, orch, nil, refuse(unix.ENOTUNIQ, "contid "+id.String()+" is live and owned by another process")
	}
	if c == nil && e.max > 0 && !ev.CallerCap && e.owned[orch.ref()] >= e.max {
		e.stats.QuotaRefused++
		return tgt, caller, orch, nil, refuse(unix.EDQUOT, "orchestrator "+itoa(orch.tgid)+" already owns "+
			strconv.Itoa(int(e.max))+" live containers, the most one orchestrator without CAP_AUDIT_CONTROL may own")
	}
	return tgt, caller, orch, c, nil
}

// resolve finds the target's process (rule 1), the caller and the
// orchestrator. A missing caller or orchestrator is not an error here: the
// rules that need them (3 and 5) report it in their turn.
func (e *Engine) resolve(target int32, callerRef TaskRef, forParent bool) (tgt, caller, orch *task, err error) {
	if t := e.lookup(target); t != nil {
		tgt = e.leader(t)
	}
	caller = e.process(callerRef)
	orch = caller
	if forParent && caller != nil {
		orch = e.parent(caller)
	}
	if tgt == nil {
		return nil, caller, orch, refuse(unix.ESRCH, "no process with pid "+itoa(target))
	}
	return tgt, caller, orch, nil
}

// permit is rule 3.
func (e *Engine) permit(caller, orch *task, forParent, callerCap bool) error {
	if caller == nil {
		return refuse(unix.EPERM, "the caller is not a tracked process")
	}
	if forParent && orch != nil && caller.cont != orch.cont {
		return refuse(unix.EPERM, "the caller is not in its orchestrator's container")
	}
	if callerCap || caller.capcontid || forParent && orch != nil && orch.capcontid {
		return nil
	}
	return refuse(unix.EPERM, "the caller has neither CAP_AUDIT_CONTROL in the initial user namespace nor capcontid")
}

// lineage is rule 5: the target is neither the caller nor the orchestrator
// and descends from the orchestrator.
func (e *Engine) lineage(tgt, caller, orch *task) error {
	switch {
	case orch == nil:
		return refuse(unix.EXDEV, "the caller's parent (its orchestrator) has exited")
	case tgt == caller:
		return refuse(unix.EXDEV, "a process cannot set its own contid")
	case tgt == orch:
		return refuse(unix.EXDEV, "a process cannot set its orchestrator's contid")
	case !e.descends(tgt, orch):
		return refuse(unix.EXDEV, "process "+itoa(tgt.tgid)+" is not a descendant of orchestrator "+itoa(orch.tgid))
	}
	return nil
}

// maxDepth bounds ancestry walks; real process trees are far shallower, and
// the bound keeps a corrupted parent link from looping.
const maxDepth = 4096

// descends reports whether leader t descends from leader anc.
func (e *Engine) descends(t, anc *task) bool {
	for i := 0; i < maxDepth && t != nil; i++ {
		t = e.parent(t)
		if t == anc {
			return true
		}
	}
	return false
}

// join moves every thread of tgt into c, creating c when it is new.
func (e *Engine) join(now int64, tgt, orch *task, c *container, ev *SetContid) *container {
	if c == nil {
		id, _ := contid.Parse(ev.Value)
		c = e.newContainer(id, orch.ref(), orch.cont, ev.Name, now)
	}
	e.moveGroup(now, tgt, c)
	return c
}

// moveGroup moves every thread of tgt's process into c.
func (e *Engine) moveGroup(now int64, tgt *task, c *container) {
	old := tgt.cont
	e.move(tgt, c)
	if tgt.threads > 1 {
		for i := range e.tasks {
			if t := &e.tasks[i]; t.tgid == tgt.tgid && t != tgt && t.set >= 0 {
				e.move(t, c)
			}
		}
	}
	if old != nil {
		e.maybeDrop(now, old, tgt)
	}
}

// Join applies a move into a bound cgroup: a process without a contid
// joins the container, one already in it (or in a container nested in it)
// stays as it is without a record, and one in another container keeps its
// own (EEXIST), as the kernel did. Each join and refusal is a CONTAINER_OP
// op=join record whose subject is the mover.
func (e *Engine) Join(ev Join) error {
	e.stats.Inputs++
	t := e.lookup(ev.PID)
	if t != nil {
		t = e.leader(t)
	}
	c := e.conts[ev.Contid]
	if t == nil || t.set < 0 || c == nil {
		e.stats.UnknownJoin++
		return nil
	}
	if t.cont != nil && t.cont.chain.Contains(c.id) {
		return nil
	}
	old := t.cont.chainOrNil()
	var err error
	switch {
	case t.cont != nil:
		err = refuse(unix.EEXIST, "process "+strconv.Itoa(int(t.tgid))+" is in container "+t.cont.chain.String()+" already")
	case e.kernel != nil:
		// Tag every thread, as a registration does. When the kernel
		// tagged the leader at the move (ev.Tagged) the join is a fact
		// whatever this walk finds: the process may have exec'd, forked
		// and exited before the event is applied, and the children it
		// made meanwhile have the contid. Its threads inherit the
		// leader's value in the kernel anyway; a failed walk is counted.
		if kerr := e.kernel.Tag(t.ref(), c.id); kerr != nil {
			if !ev.Tagged {
				err = kernelRefusal(kerr)
			} else {
				e.stats.KernelErrors++
			}
		}
	}
	if err == nil {
		e.moveGroup(ev.Time, t, c)
	}
	e.emitJoin(&ev, t, old, err)
	return err
}

func (e *Engine) move(t *task, c *container) {
	if t.set < 0 {
		t.cont = c // an exited leader: keep the group's view consistent
		return
	}
	if t.cont != nil {
		e.unuse(t.cont, e.sets[t.set].ids[ns.Net])
	}
	t.cont = c
	e.use(c, t.set)
}

func (e *Engine) newContainer(id contid.ID, owner TaskRef, parent *container, name string, now int64) *container {
	c := &container{id: id, owner: owner, parent: parent, name: name, created: now}
	c.chain = append(contid.Chain{id}, parent.chainOrNil()...)
	if parent != nil {
		parent.children++
	}
	e.conts[id] = c
	if owner != (TaskRef{}) {
		e.owned[owner]++
	}
	if e.kernel != nil {
		if err := e.kernel.Keep(e.containerInfo(c)); err != nil {
			e.stats.KernelErrors++
		}
	}
	return c
}

// orphanContainer returns the live container id, or creates it without an
// owner when the kernel reports a contid the engine has no object for.
func (e *Engine) orphanContainer(id contid.ID, now int64) *container {
	if c := e.conts[id]; c != nil {
		return c
	}
	return e.newContainer(id, TaskRef{}, nil, "", now)
}

// maybeDrop writes op=drop when c has no task and no nested container left,
// then cascades to its parent. last is the task whose exit ended it.
func (e *Engine) maybeDrop(now int64, c *container, last *task) {
	for c != nil && c.tasks <= 0 && c.children <= 0 && e.conts[c.id] == c {
		delete(e.conts, c.id)
		if c.owner != (TaskRef{}) {
			if e.owned[c.owner]--; e.owned[c.owner] <= 0 {
				delete(e.owned, c.owner)
			}
		}
		if e.kernel != nil {
			if err := e.kernel.Forget(c.id); err != nil {
				e.stats.KernelErrors++
			}
		}
		e.emitDrop(now, c, last)
		if c.parent != nil {
			c.parent.children--
		}
		c = c.parent
	}
}

func (c *container) chainOrNil() contid.Chain {
	if c == nil {
		return nil
	}
	return c.chain
}

func (c *container) idOrUnset() contid.ID {
	if c == nil {
		return contid.Unset
	}
	return c.id
}

// SetCapcontid grants or revokes the capcontid flag of a descendant (spec
// §3.2). Checks in order: target exists (ESRCH), value is 0 or 1 (EINVAL),
// the caller has CAP_AUDIT_CONTROL (EPERM), the target descends from the
// orchestrator and is neither it nor the caller (EXDEV). Every attempt is
// logged with SET_CAPCONTID.
func (e *Engine) SetCapcontid(ev SetCapcontid) error {
	e.stats.Inputs++
	if e.requests != nil {
		defer e.requests(ev)
	}
	tgt, caller, orch, err := e.resolve(ev.Target, ev.Caller, ev.ForParent)
	v := ev.Value == "1"
	if err == nil && ev.Value != "0" && ev.Value != "1" {
		err = refuse(unix.EINVAL, "capcontid must be 0 or 1, not "+quoteShort(ev.Value))
	}
	if err == nil {
		switch {
		case caller == nil:
			err = refuse(unix.EPERM, "the caller is not a tracked process")
		case !ev.CallerCap:
			err = refuse(unix.EPERM, "granting capcontid needs CAP_AUDIT_CONTROL in the initial user namespace")
		case ev.ForParent && orch != nil && caller.cont != orch.cont:
			err = refuse(unix.EPERM, "the caller is not in its orchestrator's container")
		}
	}
	if err == nil {
		err = e.lineage(tgt, caller, orch)
	}
	old := false
	if tgt != nil {
		old = tgt.capcontid
	}
	if err == nil {
		tgt.capcontid = v
	}
	e.emitCap(&ev, tgt, caller, orch, old, err)
	return err
}

// kernelRefusal turns a failed kernel write into a refusal: the target
// exiting meanwhile is ESRCH, anything else keeps its errno or is EIO.
func kernelRefusal(err error) *Error {
	var n unix.Errno
	if !errors.As(err, &n) {
		n = unix.EIO
	}
	return refuse(n, "the kernel refused the registration: "+err.Error())
}

func itoa(v int32) string { return strconv.Itoa(int(v)) }

// quoteShort quotes at most 64 bytes of untrusted input for a message.
func quoteShort(s string) string {
	if len(s) > 64 {
		return strconv.Quote(s[:64]) + "…"
	}
	return strconv.Quote(s)
}
