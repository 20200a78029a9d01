package tracker

import (
	"errors"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/core/engine"
)

// Kernel is the engine's Kernel on the tracker: registrations go into
// task storage and bind the container's own cgroups, and container
// objects into the pinned map, so a restarted daemon finds both.
type Kernel struct {
	T    *Tracker
	Pins *Pinned
}

// Tag stores id for every thread of target, then binds the cgroups that
// hold target alone, so that exec into the container later joins it. A
// failed binding is logged, not returned: the registration holds.
func (k Kernel) Tag(target engine.TaskRef, id contid.ID) error {
	if err := k.T.SetGroup(int(target.PID), target.Start, id); err != nil {
		return err
	}
	if _, err := k.T.BindCgroupsOf(target.PID, id); err != nil {
		k.T.log.Warn("binding the container's cgroups failed: exec into it will not join it", "contid", id, "err", err)
	}
	return nil
}

// Keep pins a new container object.
func (k Kernel) Keep(c engine.ContainerInfo) error { return k.Pins.Keep(c) }

// Forget unpins a dropped container and removes its cgroup bindings.
func (k Kernel) Forget(id contid.ID) error {
	return errors.Join(k.Pins.Forget(id), k.T.UnbindContid(id))
}
