package search

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Files returns the log files -if PATH names, oldest first: PATH itself
// when it is a file; for a directory (contid's log directory, a container's
// DIR/containers/<contid>, or auditd's /var/log/audit) its audit.log
// rotations, audit.log.N … audit.log.1, then audit.log.
func Files(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	type rot struct {
		n    int
		name string
	}
	var rots []rot
	current := false
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() {
			continue
		}
		if name == "audit.log" {
			current = true
			continue
		}
		if n, ok := strings.CutPrefix(name, "audit.log."); ok {
			if v, err := strconv.Atoi(n); err == nil && v > 0 && strconv.Itoa(v) == n {
				rots = append(rots, rot{v, name})
			}
		}
	}
	sort.Slice(rots, func(i, j int) bool { return rots[i].n > rots[j].n })
	var out []string
	for _, r := range rots {
		out = append(out, filepath.Join(path, r.name))
	}
	if current {
		out = append(out, filepath.Join(path, "audit.log"))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("search: no audit.log in %s", path)
	}
	return out, nil
}
