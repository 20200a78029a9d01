# Sourced by the bench scripts that drive kernel audit (fair.sh, record.sh):
# kernel audit is global, so a run takes the lock the tests take
# (audittest.LockPath) for its whole length, refuses to start beside a
# registered audit daemon, and puts back on exit the state it found.

# audit_take NAME: takes the lock on fd 9 (waiting for a test that holds
# it), checks no audit daemon is registered, and remembers the audit state
# and rules for audit_restore.
audit_take() {
	exec 9>/run/contid-audit-test.lock
	if ! flock -n 9; then
		echo "$1: waiting for /run/contid-audit-test.lock (a test is using kernel audit)" >&2
		flock 9
	fi
	if [ "$(auditctl -s | awk '$1 == "pid" {print $2}')" != 0 ]; then
		echo "$1: an audit daemon is registered; stop it first" >&2
		exit 1
	fi
	audit_state=$(auditctl -s)
	audit_rules=$(auditctl -l)
}

# audit_found KEY: the value of KEY in the state found at audit_take.
audit_found() { echo "$audit_state" | awk -v k="$1" '$1 == k {print $2}'; }

# audit_restore DIR: deletes every rule, loads the rules found (through a
# file in DIR) and puts back enabled, backlog limit and wait time, rate
# limit, and a lost counter found at 0.
audit_restore() {
	auditctl -D >/dev/null 2>&1
	if [[ $audit_rules != "No rules" ]]; then echo "$audit_rules" >"$1/found.rules" && auditctl -R "$1/found.rules" >/dev/null 2>&1; fi
	auditctl -e "$(audit_found enabled)" >/dev/null 2>&1
	auditctl -b "$(audit_found backlog_limit)" -r "$(audit_found rate_limit)" >/dev/null 2>&1
	auditctl --backlog_wait_time "$(audit_found backlog_wait_time)" >/dev/null 2>&1
	[ "$(audit_found lost)" = 0 ] && auditctl --reset-lost >/dev/null 2>&1
	return 0
}
