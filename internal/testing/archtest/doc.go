// Package archtest holds the architecture test: it lists the module's
// packages with go list and fails when a package imports more than
// MaxInternal of the module's internal packages (a package that needs
// more does two jobs: split it), or when a source of task events
// depends on another source's package (the sources meet only in package
// taskevent's contract and in the package that chooses between them).
//
// The package has no code of its own; its test is the check.
package archtest

// MaxInternal is how many internal packages a package may import.
const MaxInternal = 7

// TaskSources are the packages that implement taskevent.Source.
var TaskSources = []string{"internal/source/tracker", "internal/source/procconn"}
