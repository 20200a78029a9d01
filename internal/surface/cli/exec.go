package cli

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/contid/contid/internal/surface/api"
)

// exitContid is contid exec's status when contid itself failed and CMD did
// not run; CMD that cannot be found or executed gives 127 or 126 (from the
// held shell), as unshare and container runtimes do.
const exitContid = 125

// holdScript is the held child: /bin/sh, which starts in about a
// millisecond where a second start of this Go binary took five. It waits
// for a line on fd 3, which the parent writes once the registration
// succeeded (on failure it closes the pipe, and the shell exits without
// running CMD), then becomes CMD with fd 3 closed. As $0, "contid exec"
// names the shell's own errors ("contid exec: 1: exec: foo: not found",
// status 127; 126 when not executable). A non-interactive sh reads no
// startup file.
const holdScript = `read -r _ <&3 || exit 125; exec "$@" 3<&-`

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
	r, w, err := os.Pipe()
	if err != nil {
		return &exitError{code: exitContid, err: fmt.Errorf("exec: %w", err)}
	}
	child := exec.Command("/bin/sh", append([]string{"-c", holdScript, "contid exec"}, c.Cmd...)...)
	child.Stdin, child.Stdout, child.Stderr = os.Stdin, stdio.Out, stdio.Err
	child.ExtraFiles = []*os.File{r}
	err = child.Start()
	r.Close()
	if err != nil {
		w.Close()
		return &exitError{code: exitContid, err: fmt.Errorf("exec: %w", err)}
	}
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
	if _, err := w.Write([]byte("go\n")); err != nil {
		// The child died before it was let go: CMD never ran.
		w.Close()
		child.Wait()
		return &exitError{code: exitContid, err: fmt.Errorf("exec: release the child: %w", err)}
	}
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
