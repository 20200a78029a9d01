package auditrules

import (
	"encoding/json"
	"fmt"
)

// StateFile is the name of the state file, beside the API socket.
const StateFile = "audit-state.json"

// state is the content of the state file.
type state struct {
	Version int    `json:"version"`
	BootID  string `json:"boot_id"` // the boot it is about: kernel state does not outlive it
	PID     int    `json:"pid"`     // the daemon that wrote it
	// Found is the audit settings before contid's first change.
	Found settings `json:"found"`
	// Lost is the kernel's lost counter as last reported in a record.
	Lost uint32 `json:"lost"`
	// Rules are the rules contid added or is about to add, in the kernel's
	// encoding (struct audit_rule_data), with the line for people.
	Rules []stateRule `json:"rules"`
}

type settings struct {
	Enabled         uint32 `json:"enabled"`
	BacklogLimit    uint32 `json:"backlog_limit"`
	BacklogWaitTime uint32 `json:"backlog_wait_time"`
}

type stateRule struct {
	Text string `json:"text"`
	Wire []byte `json:"wire"`
}

const stateVersion = 1

func (s *state) marshal() ([]byte, error) {
	b, err := json.MarshalIndent(s, "", "  ")
	return append(b, '\n'), err
}

// parseState decodes a state file; it refuses another version.
func parseState(b []byte) (state, error) {
	var s state
	if err := json.Unmarshal(b, &s); err != nil {
		return state{}, err
	}
	if s.Version != stateVersion {
		return state{}, fmt.Errorf("version %d, want %d", s.Version, stateVersion)
	}
	return s, nil
}
