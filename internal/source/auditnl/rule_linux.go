package auditnl

import (
	"errors"
	"fmt"
	"os"
	"time"

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
// ended by NLMSG_DONE (the kernel sends them from a thread of its own, so
// the ack may come before, between or after them) and hands each payload
// to each. A request answered by no message at all for requestTimeout
// fails; a long answer does not. Callers hold reqMu.
func (c *Client) dump(k *conn, typ uint16, each func([]byte) error) error {
	c.seq++
	seq := c.seq
	msg := appendMessage(nil, Header{Type: typ, Flags: unix.NLM_F_REQUEST | unix.NLM_F_ACK, Seq: seq}, nil)
	if err := k.send(msg); err != nil {
		return fmt.Errorf("send type %d: %w", typ, err)
	}
	defer k.f.SetReadDeadline(time.Time{})
	var acked, done bool
	for !acked || !done {
		if err := k.f.SetReadDeadline(time.Now().Add(requestTimeout)); err != nil {
			return err
		}
		n, err := k.recv(c.reqBuf, true)
		switch {
		case errors.Is(err, errForeign):
			c.stats.foreign.Add(1)
			continue
		case err == unix.ENOBUFS:
			return fmt.Errorf("answer to type %d: %w", typ, err)
		case errors.Is(err, os.ErrDeadlineExceeded):
			return fmt.Errorf("no answer to type %d within %v: %w", typ, requestTimeout, err)
		case err != nil:
			return fmt.Errorf("receive answer to type %d: %w", typ, err)
		case n > len(c.reqBuf):
			return fmt.Errorf("answer to type %d: %w: %d-byte datagram", typ, ErrTruncated, n)
		}
		d, derr := dumpMessages(c.reqBuf[:n], seq, typ, each)
		acked = acked || d.acked
		done = done || d.done
		if derr != nil {
			return fmt.Errorf("answer to type %d: %w", typ, derr)
		}
	}
	return nil
}

type dumpState struct{ acked, done bool }

// dumpMessages handles one datagram of a dump's answer (pure, for tests):
// payloads of type typ with sequence seq go to each; an error ack ends it.
func dumpMessages(b []byte, seq uint32, typ uint16, each func([]byte) error) (dumpState, error) {
	var d dumpState
	msgs, derr := Decode(b)
	for _, m := range msgs {
		if m.Header.Seq != seq {
			continue
		}
		switch m.Header.Type {
		case unix.NLMSG_ERROR:
			ack, err := ParseAck(m.Data)
			if err != nil {
				return d, err
			}
			if ack.Errno != 0 {
				return d, ack.Errno
			}
			d.acked = true
		case unix.NLMSG_DONE:
			d.done = true
		case typ:
			if err := each(m.Data); err != nil {
				return d, err
			}
		}
	}
	return d, derr
}
