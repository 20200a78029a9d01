package daemon

import (
	"context"
	"errors"

	"github.com/contid/contid/internal/engine"
)

// request is a function to run on the core goroutine.
type request struct {
	f    func(*engine.Engine) error
	done chan error
}

// Do runs f on the core goroutine after every kernel event buffered
// before the call has been applied (api.Core).
func (d *Daemon) Do(ctx context.Context, f func(*engine.Engine) error) error {
	r := request{f: f, done: make(chan error, 1)}
	select {
	case d.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-d.stopped:
		return errStopped
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

var errStopped = errors.New("daemon: stopping")
