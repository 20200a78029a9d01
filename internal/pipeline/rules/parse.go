package rules

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/records"
)

// Limits on a rules file, so that hostile input costs bounded work.
const (
	MaxLineLen = 4096
	MaxRules   = 10000
	// MaxValueLen bounds key and exe values (the kernel's AUDIT_MAX_KEY_LEN
	// is 256; paths reach PATH_MAX, 4096, but a line holds the rest too).
	MaxValueLen = 1024
	// maxErrors is how many errors Parse reports before it stops.
	maxErrors = 20
)

// ErrInvalid is wrapped by every error about the content of a rules file.
var ErrInvalid = errors.New("rules: invalid rules file")

// Error is a problem at one place of a rules file.
type Error struct {
	Name      string // the name given to Parse
	Line, Col int    // 1-based; Col counts bytes
	Msg       string
}

func (e *Error) Error() string { return fmt.Sprintf("%s:%d:%d: %s", e.Name, e.Line, e.Col, e.Msg) }

func (e *Error) Unwrap() error { return ErrInvalid }

// ErrorList is every problem Parse found (up to 20), in file order.
type ErrorList []*Error

func (l ErrorList) Error() string {
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap returns the errors, so errors.Is(err, ErrInvalid) and errors.As
// to *Error work.
func (l ErrorList) Unwrap() []error {
	out := make([]error, len(l))
	for i, e := range l {
		out[i] = e
	}
	return out
}

// Parse reads a rules file (syntax in the package documentation). name
// names it in errors. On any error it returns no Set: a bad file changes
// nothing. Errors about the content are an ErrorList (each naming
// name:line:column and the reason); a read error is returned wrapped.
func Parse(r io.Reader, name string) (*Set, error) {
	p := parser{name: name, set: &Set{name: name}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), MaxLineLen+2)
	line := 0
	for sc.Scan() {
		line++
		if len(p.errs) >= maxErrors {
			break
		}
		text := strings.TrimSuffix(sc.Text(), "\r")
		if len(text) > MaxLineLen {
			p.errorf(line, 1, "line longer than %d bytes", MaxLineLen)
			continue
		}
		p.line(line, text)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			p.errorf(line+1, 1, "line longer than %d bytes", MaxLineLen)
		} else {
			return nil, fmt.Errorf("rules: read %s: %w", name, err)
		}
	}
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	p.set.streams = sortedStreams(p.set.rules)
	return p.set, nil
}

type parser struct {
	name string
	set  *Set
	errs ErrorList
}

func (p *parser) errorf(line, col int, format string, args ...any) {
	if len(p.errs) < maxErrors {
		p.errs = append(p.errs, &Error{Name: p.name, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)})
	}
}

// token is a word of a line and its 1-based column. A value in double
// quotes is unquoted in text; quoted says so.
type token struct {
	text   string
	col    int
	quoted int // column of the opening quote, 0 if none
}

// tokens splits a line into words: runs of bytes other than space and tab,
// where a double-quoted part ("…", with \" and \\) may hold spaces. A word
// starting with # starts a comment to the end of the line.
func (p *parser) tokens(n int, s string) ([]token, bool) {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		if c == ' ' || c == '\t' {
			i++
			continue
		}
		if c == '#' {
			break
		}
		start := i
		var b strings.Builder
		quoted := 0
		for i < len(s) && s[i] != ' ' && s[i] != '\t' {
			c := s[i]
			switch {
			case c == '"':
				if quoted != 0 {
					p.errorf(n, i+1, "a second quoted part in one word")
					return nil, false
				}
				quoted = i + 1
				i++
				closed := false
				for i < len(s) {
					c := s[i]
					if c == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
						b.WriteByte(s[i+1])
						i += 2
						continue
					}
					if c == '"' {
						closed = true
						i++
						break
					}
					if c < ' ' || c == 0x7f {
						p.errorf(n, i+1, "control byte 0x%02x in a quoted value", c)
						return nil, false
					}
					b.WriteByte(c)
					i++
				}
				if !closed {
					p.errorf(n, quoted, "unterminated double quote")
					return nil, false
				}
			case c < ' ' || c == 0x7f:
				p.errorf(n, i+1, "control byte 0x%02x", c)
				return nil, false
			default:
				if quoted != 0 {
					p.errorf(n, i+1, "text after a closing quote")
					return nil, false
				}
				b.WriteByte(c)
				i++
			}
		}
		toks = append(toks, token{text: b.String(), col: start + 1, quoted: quoted})
	}
	return toks, true
}

func (p *parser) line(n int, s string) {
	toks, ok := p.tokens(n, s)
	if !ok || len(toks) == 0 {
		return
	}
	if toks[0].text != "-a" {
		p.errorf(n, toks[0].col, "a rule starts with -a, not %q", excerpt(toks[0].text))
		return
	}
	if len(toks) < 2 {
		p.errorf(n, toks[0].col+2, "-a needs an action: drop or keep[,ROUTE…]")
		return
	}
	if len(p.set.rules) >= MaxRules {
		p.errorf(n, toks[0].col, "more than %d rules", MaxRules)
		return
	}
	r := rule{line: n}
	before := len(p.errs)
	p.action(n, toks[1], &r)
	for i := 2; i < len(toks); i++ {
		t := toks[i]
		if strings.HasPrefix(t.text, "-F") && len(t.text) > 2 && t.quoted != t.col+1 {
			// -FFIELD=VALUE, as getopt lets auditctl read it.
			t.text, t.col = t.text[2:], t.col+2
			if c, ok := p.cond(n, t); ok {
				r.conds = append(r.conds, c)
			}
			continue
		}
		if t.text != "-F" {
			switch {
			case strings.HasPrefix(t.text, "-"):
				p.errorf(n, t.col, "unknown option %q: a rule has one -a and -F conditions (write keys as -F key=, system calls as -F syscall=)", excerpt(t.text))
			default:
				p.errorf(n, t.col, "%q is not a condition: conditions follow -F", excerpt(t.text))
			}
			continue
		}
		i++
		if i == len(toks) {
			p.errorf(n, t.col+2, "-F needs a condition FIELD OP VALUE")
			break
		}
		if c, ok := p.cond(n, toks[i]); ok {
			r.conds = append(r.conds, c)
		}
	}
	if len(p.errs) == before {
		r.eval = slices.Clone(r.conds)
		slices.SortStableFunc(r.eval, func(a, b cond) int { return a.cost() - b.cost() })
		p.set.rules = append(p.set.rules, r)
	}
}

// action parses drop or keep[,host][,container][,stream=NAME]….
func (p *parser) action(n int, t token, r *rule) {
	if t.quoted != 0 {
		p.errorf(n, t.quoted, "the action is not quoted")
		return
	}
	parts := strings.Split(t.text, ",")
	col := t.col
	switch parts[0] {
	case "drop":
		r.drop = true
		if len(parts) > 1 {
			p.errorf(n, col+len("drop"), "drop takes no routes: a dropped event is written nowhere")
			return
		}
		return
	case "keep":
	default:
		p.errorf(n, col, "unknown action %q: want drop or keep", excerpt(parts[0]))
		return
	}
	col += len(parts[0]) + 1
	seen := map[string]bool{}
	for _, part := range parts[1:] {
		if seen[part] {
			p.errorf(n, col, "route %q given twice", excerpt(part))
		}
		seen[part] = true
		switch {
		case part == "host":
			r.routes.Dest |= Host
		case part == "container":
			r.routes.Dest |= Container
		case strings.HasPrefix(part, "stream="):
			name := part[len("stream="):]
			if err := checkStreamName(name); err != "" {
				p.errorf(n, col+len("stream="), "stream name %q: %s", excerpt(name), err)
			}
			r.routes.Streams = append(r.routes.Streams, name)
		case part == "":
			p.errorf(n, col, "empty route")
		default:
			p.errorf(n, col, "unknown route %q: want host, container or stream=NAME", excerpt(part))
		}
		col += len(part) + 1
	}
	if len(parts) == 1 {
		r.routes = defaultRoutes
	}
}

// checkStreamName says what is wrong with a stream name, or "".
func checkStreamName(s string) string {
	if s == "" {
		return "empty"
	}
	if len(s) > 64 {
		return "longer than 64 bytes"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return "may hold only letters, digits, '_', '-' and '.'"
		}
	}
	return ""
}

// cond parses FIELD OP VALUE.
func (p *parser) cond(n int, t token) (cond, bool) {
	s := t.text
	i := 0
	for i < len(s) && s[i] >= 'a' && s[i] <= 'z' {
		i++
	}
	name := s[:i]
	var c cond
	for f, fn := range fieldNames {
		if fn != "" && fn == name {
			c.field = field(f)
		}
	}
	if c.field == 0 {
		if name == "" {
			p.errorf(n, t.col, "condition %q does not start with a field name", excerpt(s))
		} else {
			p.errorf(n, t.col, "unknown field %q: want contid, type, key, pid, uid, auid, syscall or exe", excerpt(name))
		}
		return cond{}, false
	}
	opCol := t.col + i
	rest := s[i:]
	switch {
	case strings.HasPrefix(rest, "!="):
		c.op = opNe
	case strings.HasPrefix(rest, "<="):
		c.op = opLe
	case strings.HasPrefix(rest, ">="):
		c.op = opGe
	case strings.HasPrefix(rest, "="):
		c.op = opEq
	case strings.HasPrefix(rest, "<"):
		c.op = opLt
	case strings.HasPrefix(rest, ">"):
		c.op = opGt
	default:
		p.errorf(n, opCol, "field %s needs an operator: = or !=%s", name, orderOps(c.field))
		return cond{}, false
	}
	v := rest[len(opNames[c.op]):]
	valCol := opCol + len(opNames[c.op])
	if t.quoted != 0 && t.quoted != valCol {
		// The text before the quote is unchanged, so valCol is where the
		// value starts in the line.
		p.errorf(n, t.quoted, "only a whole value may be quoted")
		return cond{}, false
	}
	if c.op > opNe && !numeric(c.field) {
		p.errorf(n, opCol, "field %s takes only = and != (%s is for pid, uid and auid)", name, opNames[c.op])
		return cond{}, false
	}
	if v == "" {
		p.errorf(n, valCol, "field %s needs a value", name)
		return cond{}, false
	}
	bad := func(format string, args ...any) (cond, bool) {
		p.errorf(n, valCol, "%s: %s", name, fmt.Sprintf(format, args...))
		return cond{}, false
	}
	switch c.field {
	case fContid:
		if v == "none" {
			c.none = true
			break
		}
		id, err := contid.Parse(v)
		switch {
		case errors.Is(err, contid.ErrUnset):
			return bad("%s means unset and is no contid (none selects events without one)", v)
		case errors.Is(err, contid.ErrRange):
			return bad("%q is beyond the 64-bit range", excerpt(v))
		case err != nil:
			return bad("%q is neither a decimal contid nor none", excerpt(v))
		}
		c.num = uint64(id)
	case fType:
		ty, err := records.ParseType(v)
		if err != nil {
			return bad("unknown record type %q", excerpt(v))
		}
		c.num = uint64(ty)
	case fKey, fExe:
		if len(v) > MaxValueLen {
			return bad("value longer than %d bytes", MaxValueLen)
		}
		if c.field == fKey && strings.IndexByte(v, keySep) >= 0 {
			return bad("a key may not hold 0x01 (it separates keys)")
		}
		c.str = v
	case fPID:
		x, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return bad("%q is not a decimal number below 2^32", excerpt(v))
		}
		c.num = x
	case fUID, fAUID:
		if v == "unset" || v == "-1" {
			c.num = unset
			break
		}
		x, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return bad("%q is not a decimal number below 2^32, unset or -1", excerpt(v))
		}
		c.num = x
	case fSyscall:
		if v[0] >= '0' && v[0] <= '9' {
			x, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return bad("%q is not a system call number", excerpt(v))
			}
			c.num = x
			break
		}
		nr, ok := syscallNumber(v)
		if !ok {
			return bad("unknown x86_64 system call name %q (numbers work for every call)", excerpt(v))
		}
		c.num, c.byName, c.str = uint64(nr), true, v
	}
	return c, true
}

func numeric(f field) bool { return f == fPID || f == fUID || f == fAUID }

func orderOps(f field) string {
	if numeric(f) {
		return ", <, >, <=, >="
	}
	return ""
}

func sortedStreams(rs []rule) []string {
	var out []string
	for i := range rs {
		out = append(out, rs[i].routes.Streams...)
	}
	sort.Strings(out)
	j := 0
	for i, s := range out {
		if i == 0 || s != out[j-1] {
			out[j] = s
			j++
		}
	}
	return out[:j]
}

// excerpt bounds text quoted in error messages.
func excerpt(s string) string {
	const limit = 48
	if len(s) > limit {
		return s[:limit] + "…"
	}
	return s
}
