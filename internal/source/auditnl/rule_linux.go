package auditnl

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// AddRule adds a rule to the kernel (AUDIT_ADD_RULE) and waits for the
// kernel's answer: nil, or its errno (EEXIST when the kernel holds the same
// rule already, EINVAL for a rule it does not take, EPERM when audit is
// locked). Safe to call concurrently with every other method.
func (c *Client) AddRule(r Rule) error {
	return c.ruleOp("add rule", unix.AUDIT_ADD_RULE, r)
}

// DeleteRule deletes the kernel's rule equal to r (AUDIT_DEL_RULE); ENOENT
// when there is none. Safe to call concurrently with every other method.
func (c *Client) DeleteRule(r Rule) error {
	return c.ruleOp("delete rule", unix.AUDIT_DEL_RULE, r)
}

func (c *Client) ruleOp(what string, typ uint16, r Rule) error {
	if c.closed.Load() {
		return fmt.Errorf("auditnl: %s: %w", what, os.ErrClosed)
	}
	c.reqMu.Lock()
	defer c.reqMu.Unlock()
	if _, err := c.roundTrip(c.req, typ, r.Marshal(), 0); err != nil {
		return fmt.Errorf("auditnl: %s: %w", what, c.closedErr(err))
	}
	return nil
}

// ListRules returns the kernel's audit rules in the kernel's order
// (AUDIT_LIST_RULES). Safe to call concurrently with every other method.
func (c *Client) ListRules() ([]Rule, error) {
	if c.closed.Load() {
		return nil, fmt.Errorf("auditnl: list rules: %w", os.ErrClosed)
	}
	c.reqMu.Lock()
	defer c.reqMu.Unlock()
	var rules []Rule
	err := c.dump(c.req, unix.AUDIT_LIST_RULES, func(data []byte) error {
		r, err := ParseRule(data)
		if err == nil {
			rules = append(rules, r)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("auditnl: list rules: %w", c.closedErr(err))
	}
	return rules, nil
}

// dump sends a request whose answer is a series of messages of type typ
// ended by NLMSG_DONE (the kernel sends them from a thread of their own, so
// the ack may come before, between or after them) and hands each payload
// to each. Callers hold reqMu.
func (c *Client) dump(k *conn, typ uint16, each func([]byte) error) error {
	return c.exchange(k, typ, nil, typ, true, each)
}
