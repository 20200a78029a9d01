package cli

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/contid/contid/internal/api"
)

// Exit statuses of contid exec, as unshare and container runtimes use them.
const (
	exitContid    = 125 // contid itself failed; CMD did not run
	exitNotExec   = 126 // CMD could not be executed
	exitNotFound  = 127 // CMD was not found
	childGoByte   = 'g'
	childFD       = 3
	execChildName = "exec-child"
)

type execCmd struct {
	clientFlags
	Contid string   `required:"" help:"Contid for the new process."`
	Name   string   `help:"Container name recorded with the registration."`
	Cmd    []string `arg:"" passthrough:"" help:"Command and arguments (after --)."`
}

// Run starts CMD held before exec, registers it with contid as its own
// orchestrator, then lets it exec and waits for it like unshare --fork.
func (c *execCmd) Run(stdio Stdio) error {
	if len(c.Cmd) > 0 && c.Cmd[0] == "--" {
		c.Cmd = c.Cmd[1:]
	}
	if len(c.Cmd) == 0 {
		return &exitError{code: exitContid, err: errors.New("exec: no command")}
	}
	self, err := os.Executable()
	if err != nil {
		return &exitError{code: exitContid, err: fmt.Errorf("exec: %w", err)}
	}
	r, w, err := os.Pipe()
	if err != nil {
		return &exitError{code: exitContid, err: fmt.Errorf("exec: %w", err)}
	}
	child := exec.Command(self, append([]string{execChildName, "--"}, c.Cmd...)...)
	child.Stdin, child.Stdout, child.Stderr = os.Stdin, stdio.Out, stdio.Err
	child.ExtraFiles = []*os.File{r}
	if err := child.Start(); err != nil {
		return &exitError{code: exitContid, err: fmt.Errorf("exec: %w", err)}
	}
	r.Close()
	// Forward the usual signals; the child is in our process group, so a
	// terminal's ^C reaches it anyway.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT)
	defer signal.Stop(sigs)
	go func() {
		for s := range sigs {
			child.Process.Signal(s)
		}
	}()
	cx, cancel := ctx()
	_, err = c.client().SetContid(cx, api.SetRequest{PID: int32(child.Process.Pid), Contid: c.Contid, Name: c.Name})
	cancel()
	if err != nil {
		w.Close() // the child exits without running CMD
		child.Wait()
		return &exitError{code: exitContid, err: fmt.Errorf("exec: set contid %s: %w", c.Contid, err)}
	}
	w.Write([]byte{childGoByte})
	w.Close()
	err = child.Wait()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return &exitError{code: 128 + int(ws.Signal()), err: fmt.Errorf("%s: %v", c.Cmd[0], ws.Signal())}
		}
		return &exitError{code: ee.ExitCode(), err: quiet}
	}
	return &exitError{code: exitContid, err: fmt.Errorf("exec: %w", err)}
}

// quiet marks an exit status that needs no message (CMD's own failure).
var quiet = errors.New("")

// execChildCmd is the held child of contid exec: it waits for the go byte
// on fd 3, then becomes CMD. Not for direct use.
type execChildCmd struct {
	Cmd []string `arg:"" passthrough:""`
}

func (c *execChildCmd) Run(stdio Stdio) error {
	if len(c.Cmd) > 0 && c.Cmd[0] == "--" {
		c.Cmd = c.Cmd[1:]
	}
	f := os.NewFile(childFD, "contid-exec")
	var b [1]byte
	n, _ := f.Read(b[:])
	f.Close()
	if n != 1 || b[0] != childGoByte || len(c.Cmd) == 0 {
		return &exitError{code: exitContid, err: quiet} // the parent reports why
	}
	path, err := exec.LookPath(c.Cmd[0])
	if err != nil {
		return &exitError{code: exitNotFound, err: fmt.Errorf("exec: %w", err)}
	}
	err = syscall.Exec(path, c.Cmd, os.Environ())
	return &exitError{code: exitNotExec, err: fmt.Errorf("exec %s: %w", path, err)}
}
