package tracker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/cilium/ebpf"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/core/engine"
)

// Pinned keeps live container objects (owner, parent, name) in a BPF
// hash map pinned beside the tracker's contid map, so a restarted daemon
// restores them with the same lifetime as the contids themselves.
type Pinned struct{ m *ebpf.Map }

const (
	pinConts     = "contid_conts"
	maxPinned    = 65536
	pinNameBytes = 64
	pinValueSize = 4 + 4 + 8 + 8 + pinNameBytes // owner pid, pad, owner start, parent, name
)

// OpenPinned opens (or creates) the pinned container map in dir.
func OpenPinned(dir string) (*Pinned, error) {
	m, err := ebpf.NewMapWithOptions(&ebpf.MapSpec{
		Name: pinConts, Type: ebpf.Hash, KeySize: 8, ValueSize: pinValueSize,
		MaxEntries: maxPinned, Pinning: ebpf.PinByName,
	}, ebpf.MapOptions{PinPath: dir})
	if err != nil {
		return nil, fmt.Errorf("tracker: pinned containers in %s: %w", dir, err)
	}
	return &Pinned{m: m}, nil
}

// Close closes the map; its pin stays.
func (p *Pinned) Close() error { return p.m.Close() }

// Keep stores a container object.
func (p *Pinned) Keep(c engine.ContainerInfo) error {
	var v [pinValueSize]byte
	binary.LittleEndian.PutUint32(v[0:], uint32(c.Owner.PID))
	binary.LittleEndian.PutUint64(v[8:], c.Owner.Start)
	parent := contid.Unset
	if len(c.Chain) > 1 {
		parent = c.Chain[1]
	}
	binary.LittleEndian.PutUint64(v[16:], uint64(parent))
	copy(v[24:], c.Name) // longer names are cut: the API bounds them at 256
	if err := p.m.Put(uint64(c.Chain[0]), v[:]); err != nil {
		return fmt.Errorf("tracker: pin container %d: %w", c.Chain[0], err)
	}
	return nil
}

// Forget removes a container object; a missing one is no error.
func (p *Pinned) Forget(id contid.ID) error {
	if err := p.m.Delete(uint64(id)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("tracker: unpin container %d: %w", id, err)
	}
	return nil
}

// List returns the pinned containers, parents before their children.
func (p *Pinned) List() ([]engine.SeedContainer, error) {
	var out []engine.SeedContainer
	var k uint64
	var v []byte
	it := p.m.Iterate()
	for it.Next(&k, &v) {
		if len(v) != pinValueSize {
			continue
		}
		name := v[24:]
		if i := slices.Index(name, 0); i >= 0 {
			name = name[:i]
		}
		out = append(out, engine.SeedContainer{
			ID:     contid.ID(k),
			Owner:  engine.TaskRef{PID: int32(binary.LittleEndian.Uint32(v[0:])), Start: binary.LittleEndian.Uint64(v[8:])},
			Parent: contid.ID(binary.LittleEndian.Uint64(v[16:])),
			Name:   string(name),
		})
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("tracker: list pinned containers: %w", err)
	}
	return parentsFirst(out), nil
}

// parentsFirst orders containers so each comes after its parent; a
// container whose parent is missing is kept as top-level.
func parentsFirst(in []engine.SeedContainer) []engine.SeedContainer {
	byID := make(map[contid.ID]engine.SeedContainer, len(in))
	for _, c := range in {
		byID[c.ID] = c
	}
	done := make(map[contid.ID]bool, len(in))
	var out []engine.SeedContainer
	var visit func(c engine.SeedContainer, depth int)
	visit = func(c engine.SeedContainer, depth int) {
		if done[c.ID] || depth > 64 {
			return
		}
		if p, ok := byID[c.Parent]; ok && c.Parent != contid.Unset {
			visit(p, depth+1)
		} else {
			c.Parent = contid.Unset
		}
		done[c.ID] = true
		out = append(out, c)
	}
	slices.SortFunc(in, func(a, b engine.SeedContainer) int {
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	for _, c := range in {
		visit(c, 0)
	}
	return out
}
