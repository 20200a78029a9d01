package auditrules

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/elastic/go-libaudit/v2/rule"
	"github.com/elastic/go-libaudit/v2/rule/flags"
	"github.com/kballard/go-shellquote"
	"golang.org/x/sys/unix"

	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/source/auditnl"
)

// Rule is one rule of a rules file.
type Rule struct {
	Line   int          // 1-based line in the file
	Text   string       // the line as written, trimmed
	Kernel auditnl.Rule // what the kernel is sent
}

// MaxRules bounds a rules file.
const MaxRules = 10000

// ruleOptions are the auditctl options a rule line may have; each takes
// one argument.
var ruleOptions = []string{"-a", "-A", "-w", "-p", "-k", "-F", "-C", "-S"}

// refused names why an option that is not a rule option is refused.
var refused = map[string]string{
	"-e":                               "sets whether audit is enabled (-e 0 turns it off, -e 2 locks it until reboot)",
	"-D":                               "deletes every rule, also those that are not contid's",
	"-d":                               "deletes a rule",
	"-W":                               "deletes a watch",
	"-b":                               "sets the kernel's backlog limit (audit.backlog_limit)",
	"--backlog_wait_time":              "sets the kernel's backlog wait time (audit.backlog_wait_time)",
	"-f":                               "sets the kernel's failure action",
	"-r":                               "sets a rate limit, which drops records",
	"--reset-lost":                     "resets the kernel's loss counter",
	"--loginuid-immutable":             "makes login uids immutable until reboot",
	"-R":                               "reads another rules file",
	"--reset_backlog_wait_time_actual": "resets a kernel counter",
}

// ParseFile parses the rules file at path.
func ParseFile(path string) ([]Rule, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auditrules: %w", err)
	}
	defer f.Close()
	return Parse(f, path)
}

// Parse reads a rules file (auditctl syntax, one rule a line, # comments)
// named name in errors. It returns every rule or, if any line is refused,
// none and an error naming name:line.
func Parse(r io.Reader, name string) ([]Rule, error) {
	var out []Rule
	lines := map[string]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		k, err := parseLine(line)
		if err != nil {
			return nil, fmt.Errorf("auditrules: %s:%d: %w", name, n, err)
		}
		if m, dup := lines[key(k)]; dup {
			return nil, fmt.Errorf("auditrules: %s:%d: the same rule as line %d (the kernel holds a rule once)", name, n, m)
		}
		lines[key(k)] = n
		if len(out) == MaxRules {
			return nil, fmt.Errorf("auditrules: %s:%d: more than %d rules", name, n, MaxRules)
		}
		out = append(out, Rule{Line: n, Text: line, Kernel: k})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("auditrules: %s: %w", name, err)
	}
	return out, nil
}

// parseLine parses one rule line into the kernel's form and applies
// contid's policy to it.
func parseLine(line string) (auditnl.Rule, error) {
	if strings.ContainsFunc(line, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return auditnl.Rule{}, fmt.Errorf("control character in the line")
	}
	args, err := shellquote.Split(line)
	if err != nil {
		return auditnl.Rule{}, fmt.Errorf("%w", err)
	}
	// Every option is checked here, not left to the parser below, which
	// stops at the first word that is not an option and ignores the rest.
	seen := map[string]bool{}
	for i := 0; i < len(args); i += 2 {
		o := args[i]
		if !slices.Contains(ruleOptions, o) {
			if why, ok := refused[o]; ok {
				return auditnl.Rule{}, fmt.Errorf("%s is refused: it %s; only rule options (%s) are allowed", o, why, strings.Join(ruleOptions, " "))
			}
			if strings.HasPrefix(o, "-") {
				return auditnl.Rule{}, fmt.Errorf("%s is refused: only rule options (%s) are allowed", o, strings.Join(ruleOptions, " "))
			}
			return auditnl.Rule{}, fmt.Errorf("%q is not an option (each option takes one argument)", o)
		}
		if i+1 == len(args) {
			return auditnl.Rule{}, fmt.Errorf("%s needs an argument", o)
		}
		switch o {
		case "-a", "-A", "-w", "-p":
			if seen[o] || (o != "-p" && (seen["-a"] || seen["-A"] || seen["-w"])) {
				return auditnl.Rule{}, fmt.Errorf("one rule a line: a second %s", o)
			}
		}
		seen[o] = true
	}
	if !seen["-a"] && !seen["-A"] && !seen["-w"] {
		return auditnl.Rule{}, fmt.Errorf("not a rule: -a, -A or -w is missing")
	}
	r, err := flags.Parse(line)
	if err != nil {
		return auditnl.Rule{}, err
	}
	wire, err := rule.Build(r)
	if err != nil {
		return auditnl.Rule{}, err
	}
	k, err := auditnl.ParseRule(wire)
	if err != nil {
		return auditnl.Rule{}, fmt.Errorf("encoding: %w", err)
	}
	if err := check(k); err != nil {
		return auditnl.Rule{}, err
	}
	return k, nil
}

// check refuses a rule that could drop contid's own records: the kernel
// drops every record an exclude rule matches (always or never), and a
// user record the first matching user-list rule says never to. contid
// sends its records as user records from its own process, so only the
// rule's msgtype conditions can keep it off them.
func check(k auditnl.Rule) error {
	var what string
	switch {
	case k.List() == unix.AUDIT_FILTER_EXCLUDE:
		what = "an exclude rule"
	case k.List() == unix.AUDIT_FILTER_USER && k.Action == unix.AUDIT_NEVER:
		what = "a never rule of the user list"
	default:
		return nil
	}
	for t := records.ContainerOp; t <= records.ContidLoss; t++ {
		if admits(k, uint32(t)) {
			return fmt.Errorf("%s that could drop contid's own records (type %d, %s): "+
				"give it msgtype conditions that no type %d–%d meets",
				what, t, t, records.ContainerOp, records.ContidLoss)
		}
	}
	return nil
}

// admits reports whether a record of type t meets every msgtype condition
// of k, compared as the kernel does (audit_comparator).
func admits(k auditnl.Rule, t uint32) bool {
	for _, f := range k.Fields {
		if f.Field != unix.AUDIT_MSGTYPE {
			continue
		}
		var ok bool
		switch v := f.Value; f.Op {
		case unix.AUDIT_EQUAL:
			ok = t == v
		case unix.AUDIT_NOT_EQUAL:
			ok = t != v
		case unix.AUDIT_LESS_THAN:
			ok = t < v
		case unix.AUDIT_LESS_THAN_OR_EQUAL:
			ok = t <= v
		case unix.AUDIT_GREATER_THAN:
			ok = t > v
		case unix.AUDIT_GREATER_THAN_OR_EQUAL:
			ok = t >= v
		case unix.AUDIT_BIT_MASK:
			ok = t&v != 0
		case unix.AUDIT_BIT_TEST:
			ok = t&v == v
		default:
			ok = true // an operator not known here: assume the worst
		}
		if !ok {
			return false
		}
	}
	return true
}

// key identifies a rule as the kernel does (see auditnl.Rule.Equal).
func key(r auditnl.Rule) string {
	r.Flags = r.List()
	return string(r.Marshal())
}
