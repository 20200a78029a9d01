package search

import (
	"sort"
	"strconv"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/records"
)

// Report summarises events per container, as aureport does per user or
// executable. Feed it events with Add; it is pure and not safe for
// concurrent use.
type Report struct {
	// Only, when set, limits the report to these containers (and counts
	// the events of their nested containers for them too, as --contid).
	Only       []contid.ID
	containers map[contid.ID]*ContainerReport
	losses     []Loss
}

// ContainerReport is one container's summary.
type ContainerReport struct {
	Contid   contid.ID      `json:"contid"`
	Parent   *contid.ID     `json:"parent,omitempty"`
	Nested   []contid.ID    `json:"nested,omitempty"`
	Events   int            `json:"events"`
	First    int64          `json:"first"` // unix seconds
	Last     int64          `json:"last"`
	Lifetime []LifeEvent    `json:"lifetime,omitempty"`
	Exes     map[string]int `json:"exes,omitempty"`     // executables started (execve)
	Types    map[string]int `json:"types,omitempty"`    // events by record type
	Syscalls map[string]int `json:"syscalls,omitempty"` // by syscall
	Keys     map[string]int `json:"keys,omitempty"`     // by rule key
	Failed   map[string]int `json:"failed,omitempty"`   // failed syscalls by name and exit
	Names    []NamespaceUse `json:"namespaces,omitempty"`
	Losses   int            `json:"losses"` // CONTID_LOSS counts within first–last
	nested   map[contid.ID]bool
	nsSeen   map[NamespaceUse]bool
}

// LifeEvent is a registration, a join or the end of a container.
type LifeEvent struct {
	Op     string `json:"op"` // set, join, drop
	Time   int64  `json:"time"`
	Serial uint64 `json:"serial"`
	PID    string `json:"opid,omitempty"`
	Exe    string `json:"exe,omitempty"`
	Result string `json:"res,omitempty"`
}

// NamespaceUse is a namespace a container created or entered.
type NamespaceUse struct {
	How  string `json:"how"` // create, change
	Type string `json:"nstype"`
	NS   string `json:"ns"`
}

// Loss is a CONTID_LOSS record: events or records contid lost.
type Loss struct {
	Time  int64
	Kind  string
	Count int
}

// NewReport returns an empty report.
func NewReport(only []contid.ID) *Report {
	return &Report{Only: only, containers: map[contid.ID]*ContainerReport{}}
}

func (rep *Report) get(id contid.ID) *ContainerReport {
	c := rep.containers[id]
	if c == nil {
		c = &ContainerReport{Contid: id, Exes: map[string]int{}, Types: map[string]int{}, Syscalls: map[string]int{},
			Keys: map[string]int{}, Failed: map[string]int{}, nested: map[contid.ID]bool{}, nsSeen: map[NamespaceUse]bool{}, First: -1}
		rep.containers[id] = c
	}
	return c
}

// Add counts one event.
func (rep *Report) Add(ev *Event) {
	ev.Parse()
	for i := range ev.Records {
		r := &ev.Records[i]
		if r.Type == records.ContidLoss {
			n, _ := strconv.Atoi(get(r, "count"))
			rep.losses = append(rep.losses, Loss{Time: ev.Stamp.Sec, Kind: get(r, "kind"), Count: n})
		}
	}
	// The containers the event counts for: the innermost of each chain,
	// or with Only, each listed container found anywhere in a chain.
	counted := map[contid.ID]bool{}
	for _, ch := range Chains(ev) {
		if len(ch) == 0 {
			continue
		}
		for j, id := range ch {
			if j+1 < len(ch) {
				p := ch[j+1]
				rep.get(id).Parent = &p
				rep.get(p).nested[ch[0]] = true
			}
		}
		if len(rep.Only) == 0 {
			counted[ch[0]] = true
			continue
		}
		for _, id := range rep.Only {
			if ch.Contains(id) {
				counted[id] = true
				if ch[0] != id {
					rep.get(id).nested[ch[0]] = true
				}
			}
		}
	}
	for id := range counted {
		rep.get(id).add(ev)
	}
}

func get(r *records.Record, key string) string {
	v, _ := r.Get(key)
	return v
}

func (c *ContainerReport) add(ev *Event) {
	c.Events++
	if c.First < 0 || ev.Stamp.Sec < c.First {
		c.First = ev.Stamp.Sec
	}
	c.Last = max(c.Last, ev.Stamp.Sec)
	hasCID := false
	for i := range ev.Records {
		hasCID = hasCID || ev.Records[i].Type == records.ContainerID
	}
	seenTypes := map[records.Type]bool{}
	for i := range ev.Records {
		r := &ev.Records[i]
		if !seenTypes[r.Type] {
			seenTypes[r.Type] = true
			c.Types[r.Type.String()]++
		}
		switch {
		case r.Type == records.Syscall:
			nr := get(r, "syscall")
			name := syscallName(nr)
			c.Syscalls[name]++
			if get(r, "success") == "no" {
				c.Failed[name+" exit="+get(r, "exit")]++
			}
			if nr == "59" || nr == "322" {
				if exe, ok := r.Get("exe"); ok {
					c.Exes[exe]++
				}
			}
		case r.Type == records.ContainerOp && !hasCID:
			op, _ := ownField(r, "op", true)
			id, _ := ownField(r, "contid", true)
			if (op == "set" || op == "join" || op == "drop") && id == strconv.FormatUint(uint64(c.Contid), 10) {
				opid, _ := ownField(r, "opid", true)
				res, _ := ownField(r, "res", true)
				exe := ""
				for j := len(r.Fields) - 1; j >= 0; j-- { // the subject's exe= (the last one)
					if r.Fields[j].Key == "exe" {
						exe = r.Fields[j].Value
						break
					}
				}
				c.Lifetime = append(c.Lifetime, LifeEvent{Op: op, Time: ev.Stamp.Sec, Serial: ev.Stamp.Serial, PID: opid, Exe: exe, Result: res})
			}
		case (r.Type == records.NSCreate || r.Type == records.NSChange) && !hasCID:
			u := NamespaceUse{How: "create", Type: get(r, "nstype"), NS: get(r, "ns")}
			if r.Type == records.NSChange {
				u.How = "change"
			}
			if !c.nsSeen[u] {
				c.nsSeen[u] = true
				c.Names = append(c.Names, u)
			}
		}
	}
	for _, k := range Keys(ev) {
		c.Keys[k]++
	}
}

// Containers returns the report, containers by contid, with nested lists
// and the losses within each container's time range.
func (rep *Report) Containers() []*ContainerReport {
	var out []*ContainerReport
	for id, c := range rep.containers {
		if len(rep.Only) > 0 && !has(rep.Only, id) || c.Events == 0 {
			continue
		}
		c.Nested = c.Nested[:0]
		for n := range c.nested {
			c.Nested = append(c.Nested, n)
		}
		sort.Slice(c.Nested, func(i, j int) bool { return c.Nested[i] < c.Nested[j] })
		c.Losses = 0
		for _, l := range rep.losses {
			if l.Time >= c.First && l.Time <= c.Last {
				c.Losses += l.Count
			}
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Contid < out[j].Contid })
	return out
}

var syscallNames = func() map[string]string {
	m := make(map[string]string, len(syscallsX8664))
	for name, nr := range syscallsX8664 {
		m[strconv.Itoa(nr)] = name
	}
	return m
}()

func syscallName(nr string) string {
	if n, ok := syscallNames[nr]; ok {
		return n
	}
	return nr
}
