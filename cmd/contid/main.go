// Command contid attaches audit container identifiers to Linux audit
// events. See README.md.

// The runtime re-reads the cgroup CPU limit every second to adjust
// GOMAXPROCS (Go 1.25+): a wakeup a second in a daemon that should sleep
// while the host is quiet. contid's limit is read once, at start.
//
//go:debug updatemaxprocs=0
package main

import (
	"os"

	"github.com/contid/contid/internal/surface/cli"
)

func main() {
	os.Exit(cli.Run(os.Args[1:], cli.Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}))
}
