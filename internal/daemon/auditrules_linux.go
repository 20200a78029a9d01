package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// loadAuditRules adds the rules of path with auditctl and returns them; if
// one fails, the ones added before it are deleted again and nothing stays.
func loadAuditRules(path string) ([]auditRule, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	rs, err := parseAuditRules(f, path)
	f.Close()
	if err != nil {
		return nil, err
	}
	for i, r := range rs {
		if err := auditctl(r.add); err != nil {
			for j := i - 1; j >= 0; j-- {
				auditctl(rs[j].dele)
			}
			return nil, fmt.Errorf("%s:%d: %w", path, r.line, err)
		}
	}
	return rs, nil
}

// deleteAuditRules deletes rules loadAuditRules added, newest first.
func deleteAuditRules(path string, rs []auditRule) error {
	var errs []error
	for j := len(rs) - 1; j >= 0; j-- {
		if err := auditctl(rs[j].dele); err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %w", path, rs[j].line, err))
		}
	}
	return errors.Join(errs...)
}

func auditctl(args []string) error {
	var stderr bytes.Buffer
	cmd := exec.Command("auditctl", args...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("auditctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
