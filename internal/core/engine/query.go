package engine

import (
	"slices"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/ns"
)

// Chain returns the contid chain of task tid (nil when it has none or is
// unknown). The slice is shared and must not be modified.
func (e *Engine) Chain(tid int32) contid.Chain {
	t := e.lookup(tid)
	if t == nil {
		return nil
	}
	return t.cont.chainOrNil() // an exited leader answers for its group
}

// TaskInfo describes one tracked task.
type TaskInfo struct {
	TID, TGID, PPID int32
	Start           uint64
	Chain           contid.Chain
	Capcontid       bool
	NS              ns.Set
	Subject         Subject
}

// Task returns what the engine knows of task tid.
func (e *Engine) Task(tid int32) (TaskInfo, bool) {
	t := e.lookup(tid)
	if t == nil {
		return TaskInfo{}, false
	}
	return e.info(t), true
}

func (e *Engine) info(t *task) TaskInfo {
	ti := TaskInfo{TID: t.tid, TGID: t.tgid, Start: t.start, Chain: t.cont.chainOrNil(), Subject: t.subj}
	if l := e.leader(t); l != nil {
		ti.PPID = l.ppid
		ti.Capcontid = l.capcontid
	}
	if t.set >= 0 {
		ti.NS = e.sets[t.set].ids
	}
	return ti
}

// TaskCount returns the number of live tasks, as len(Tasks()) without
// copying them.
func (e *Engine) TaskCount() int {
	n := 0
	for _, i := range e.idx {
		if e.tasks[i].set >= 0 {
			n++
		}
	}
	return n
}

// Tasks returns every live task, sorted by tid.
func (e *Engine) Tasks() []TaskInfo {
	out := make([]TaskInfo, 0, len(e.idx))
	for _, i := range e.idx {
		if t := &e.tasks[i]; t.set >= 0 {
			out = append(out, e.info(t))
		}
	}
	slices.SortFunc(out, func(a, b TaskInfo) int { return int(a.TID) - int(b.TID) })
	return out
}

// ContainerInfo describes one live container object.
type ContainerInfo struct {
	Chain    contid.Chain // its ID first, then its ancestors'
	Owner    TaskRef
	Name     string
	Tasks    int // live member tasks
	Children int // live nested containers
	Created  int64
	Netns    []ns.ID // network namespaces its tasks use
}

// Containers returns the live containers sorted by ID.
func (e *Engine) Containers() []ContainerInfo {
	out := make([]ContainerInfo, 0, len(e.conts))
	for _, c := range e.conts {
		out = append(out, e.containerInfo(c))
	}
	slices.SortFunc(out, func(a, b ContainerInfo) int {
		switch {
		case a.Chain[0] < b.Chain[0]:
			return -1
		case a.Chain[0] > b.Chain[0]:
			return 1
		}
		return 0
	})
	return out
}

func (e *Engine) containerInfo(c *container) ContainerInfo {
	ci := ContainerInfo{Chain: c.chain, Owner: c.owner, Name: c.name, Tasks: int(c.tasks), Children: int(c.children), Created: c.created}
	for id, ni := range e.nets {
		for _, u := range ni.uses {
			if u.c == c {
				ci.Netns = append(ci.Netns, id)
			}
		}
	}
	slices.SortFunc(ci.Netns, func(a, b ns.ID) int { return int(a.Ino) - int(b.Ino) })
	return ci
}

// NetnsChains returns the chains of every container with a task in network
// namespace net, newest first (the contid= list of a NETFILTER_PKT's
// CONTAINER_ID record).
func (e *Engine) NetnsChains(net ns.ID) []contid.Chain {
	ni := e.nets[net]
	if ni == nil {
		return nil
	}
	out := make([]contid.Chain, len(ni.uses))
	for i, u := range ni.uses {
		out[i] = u.c.chain
	}
	return out
}
