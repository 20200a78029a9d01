// Package oci turns an OCI runtime hook's state (the JSON a runtime writes
// to a hook's stdin) into a contid registration: which process, which
// contid, which name. It is pure; the CLI does the I/O.
package oci

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"path"

	"github.com/contid/contid/internal/contid"
)

// Annotation carries an explicit contid (a decimal u64) in a container's
// config.json annotations.
const Annotation = "org.contid.contid"

// CapAnnotation "1" asks the hook to grant the container's process
// capcontid (spec §3.2), so that an orchestrator running inside the
// container without CAP_AUDIT_CONTROL can register nested containers.
const CapAnnotation = "org.contid.capcontid"

// nameAnnotations are where orchestrators put a container's human name, in
// order of preference: containerd's CRI, kubelet's label (CRI-O), and
// contid's own for everyone else (podman 4.3 passes no name in the state:
// `podman run --annotation org.contid.name=NAME`).
var nameAnnotations = []string{
	"io.kubernetes.cri.container-name",
	"io.kubernetes.container.name",
	"org.contid.name",
}

// State is the part of the OCI runtime state contid reads.
type State struct {
	OCIVersion  string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Status      string            `json:"status"`
	PID         int               `json:"pid"`
	Bundle      string            `json:"bundle"`
	Annotations map[string]string `json:"annotations"`
}

// MaxState bounds the state JSON a hook reads.
const MaxState = 1 << 20

// ReadState parses the state from a hook's stdin.
func ReadState(r io.Reader) (State, error) {
	var s State
	b, err := io.ReadAll(io.LimitReader(r, MaxState+1))
	if err != nil {
		return s, fmt.Errorf("oci: read state: %w", err)
	}
	if len(b) > MaxState {
		return s, fmt.Errorf("oci: state longer than %d bytes", MaxState)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("oci: state is not OCI state JSON: %w", err)
	}
	switch {
	case s.ID == "":
		return s, fmt.Errorf("oci: state has no container id")
	case s.PID <= 0 || s.PID > 1<<22:
		return s, fmt.Errorf("oci: state has no host pid of the container's process (pid %d); "+
			"run contid oci-hook as a createRuntime or prestart hook", s.PID)
	}
	return s, nil
}

// Registration is what a hook asks of the daemon.
type Registration struct {
	PID    int
	Contid string // as the API takes it
	Name   string // recorded with the registration: "ID" or "ID/NAME"
	// Capcontid, when set ("0" or "1", kept as written), is granted to
	// the container's process after it is registered.
	Capcontid string
}

// Plan decides the registration for a container: the annotation's contid
// when present (kept as written, so a bad one is refused and logged by the
// daemon), else Hash of the container id.
func Plan(s State) Registration {
	r := Registration{PID: s.PID, Name: s.ID}
	if n := name(s); n != "" {
		r.Name = s.ID + "/" + n
	}
	r.Capcontid = s.Annotations[CapAnnotation]
	if v, ok := s.Annotations[Annotation]; ok {
		r.Contid = v
	} else {
		r.Contid = Hash(s.ID).String()
	}
	return r
}

// name returns the container's human name from its annotations, "" when
// it has none other than its id.
func name(s State) string {
	for _, k := range nameAnnotations {
		if n := s.Annotations[k]; n != "" && n != s.ID {
			return n
		}
	}
	return ""
}

// CapAllowed reports whether the hook may grant capcontid to the container
// of s: whether one of patterns (shell globs, path.Match) matches its id or
// its name. No pattern allows none; "*" allows every container.
//
// The annotation is the container creator's wish, and capcontid is a
// privilege the hook's owner grants: only the creator of a container the
// list names gets it. Patterns are checked by CheckPatterns first.
func CapAllowed(patterns []string, s State) bool {
	n := name(s)
	for _, p := range patterns {
		if ok, _ := path.Match(p, s.ID); ok {
			return true
		}
		if ok, _ := path.Match(p, n); ok && n != "" {
			return true
		}
	}
	return false
}

// CheckPatterns reports the first malformed pattern.
func CheckPatterns(patterns []string) error {
	for _, p := range patterns {
		if _, err := path.Match(p, ""); err != nil || p == "" {
			return fmt.Errorf("oci: capcontid pattern %q is not a glob: %w", p, path.ErrBadPattern)
		}
	}
	return nil
}

// Hash is contid's stable contid for a container id: the first 8 bytes of
// SHA-256("contid:" + id), big-endian, with the top bit cleared so it never
// collides with the unset value and reads as a positive number everywhere.
// The same container id always maps to the same contid, on every host.
func Hash(id string) contid.ID {
	sum := sha256.Sum256([]byte("contid:" + id))
	return contid.ID(binary.BigEndian.Uint64(sum[:8]) &^ (1 << 63))
}
