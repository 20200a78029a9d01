package records

// Raw is one record as a source received it, not yet parsed: a netlink
// message's type and payload (`audit(SEC.MSEC:SERIAL): fields…`), or a
// whole log line with Type 0 (auditd's plugin feed, a log file).
type Raw struct {
	Type uint16
	Data []byte
}
