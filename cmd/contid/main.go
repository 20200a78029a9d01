// Command contid attaches audit container identifiers to Linux audit
// events. See README.md.
package main

import (
	"os"

	"github.com/contid/contid/internal/cli"
)

func main() {
	os.Exit(cli.Run(os.Args[1:], cli.Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}))
}
