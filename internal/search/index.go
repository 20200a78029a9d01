package search

import "os"

// Builder builds a file's index from the lines and events of a scan.
type Builder struct{}

func (b *Builder) line(off int64, g *Grouper) {}
func (b *Builder) event(ev *Event)            {}
func (b *Builder) end(off int64, g *Grouper)  {}

func (s *scan) indexed(path string, fi os.FileInfo, opt Options) error {
	return s.run(0, s.size, nil, nil)
}
