package daemon

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// auditRule is one kernel audit rule of an audit.rules file: the auditctl
// arguments that add it and those that delete it again.
type auditRule struct {
	line      int
	add, dele []string
}

// parseAuditRules reads an audit rules file in auditctl syntax. Only rule
// lines are taken (-a, -A, -w): contid loads them at start and deletes
// exactly them at stop, so a line that changes global state (-D deletes
// every rule, -e 2 locks audit until reboot, -b, -f, -r) is refused, and a
// bad file loads nothing.
func parseAuditRules(r io.Reader, name string) ([]auditRule, error) {
	var out []auditRule
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		w := strings.Fields(line)
		var del string
		switch w[0] {
		case "-a", "-A":
			del = "-d"
		case "-w":
			del = "-W"
		default:
			return nil, fmt.Errorf("%s:%d: %q: only rule lines (-a, -A, -w) are allowed; contid deletes them again at stop", name, n, w[0])
		}
		if len(w) < 2 {
			return nil, fmt.Errorf("%s:%d: %s needs its rule", name, n, w[0])
		}
		for _, x := range w {
			if strings.ContainsFunc(x, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				return nil, fmt.Errorf("%s:%d: control character", name, n)
			}
		}
		out = append(out, auditRule{line: n, add: w, dele: append([]string{del}, w[1:]...)})
		if len(out) > 10000 {
			return nil, fmt.Errorf("%s: more than 10000 rules", name)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}
