// Package cli is contid's command line: one kong command struct per
// subcommand, each a thin layer over the packages that do the work.
package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/alecthomas/kong"
)

// Stdio is the command's standard streams.
type Stdio struct {
	In       io.Reader
	Out, Err io.Writer
}

// root is the command tree.
type root struct {
	Daemon     daemonCmd     `cmd:"" help:"Run the daemon: track tasks, serve the API, write the log."`
	Audisp     audispCmd     `cmd:"" help:"Run the daemon as auditd's plugin (plugins.d): kernel records on stdin."`
	Set        setCmd        `cmd:"" help:"Set the contid of a process, acting for the shell that runs contid."`
	Get        getCmd        `cmd:"" help:"Print a process's contid (or chain)."`
	Exec       execCmd       `cmd:"" help:"Run a command in a new container: registered before it execs."`
	Ps         psCmd         `cmd:"" help:"Show the process tree with contid chains."`
	Containers containersCmd `cmd:"" help:"List live containers."`
	Capcontid  capcontidCmd  `cmd:"" help:"Grant (1) or revoke (0) the right to register (spec §3.2)."`
	Status     statusCmd     `cmd:"" help:"Show the daemon's counters."`
	OCIHook    ociHookCmd    `cmd:"" name:"oci-hook" help:"OCI runtime hook: register a container's process (state JSON on stdin)."`
	Replay     replayCmd     `cmd:"" help:"Replay a trace (contid daemon --record) and print the records it produces: the host log, with kernel audit."`
	Search     searchCmd     `cmd:"" help:"Find events in the logs by container, time, type, process, key (ausearch's flags)."`
	Index      indexCmd      `cmd:"" help:"Rebuild the search index of the logs."`
	Report     reportCmd     `cmd:"" help:"Summarise the logs per container, like aureport."`
}

// exitError carries a specific exit status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

// Run parses args, runs the subcommand and returns the exit status.
func Run(args []string, stdio Stdio) int {
	var r root
	exited := -1
	parser, err := kong.New(&r,
		kong.Name("contid"),
		kong.Description("Audit container identifiers for Linux audit events."),
		kong.UsageOnError(),
		kong.Writers(stdio.Out, stdio.Err),
		kong.Exit(func(code int) { exited = code }),
		kong.BindTo(stdio, (*Stdio)(nil)),
	)
	if err != nil {
		fmt.Fprintf(stdio.Err, "contid: %v\n", err)
		return 2
	}
	ctx, err := parser.Parse(ausearchArgs(args))
	if exited >= 0 {
		return exited // --help and friends
	}
	if err != nil {
		fmt.Fprintf(stdio.Err, "contid: %v\n", err)
		return 2
	}
	ctx.Bind(stdio)
	if err := ctx.Run(); err != nil {
		var ee *exitError
		if !errors.As(err, &ee) || ee.err != quiet {
			fmt.Fprintf(stdio.Err, "contid: %v\n", err)
		}
		if ee != nil {
			return ee.code
		}
		return 1
	}
	return 0
}
