#!/usr/bin/awk -f
# fairtable.awk OUT: the table of bench/fair.sh from its raw lines: the
# median over rounds of each reader's CPU per 1,000 events (contid's eBPF
# time included) per load, contid's ratios to the others, the idle cost,
# and every run whose loss checks were not 0.
function median(key,   n, i, j, v, t) {
	n = cnt[key]
	if (n == 0) return ""
	for (i = 1; i <= n; i++) v[i] = val[key, i]
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
	return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
function add(key, x) { val[key, ++cnt[key]] = x }
function num(x, f) { return x == "" ? "-" : sprintf(f, x) }
function ratio(a, b) { return a == "" || b == "" || b == 0 ? "-" : sprintf("%.2fx", a / b) }
{
	delete f
	for (i = 2; i < NF; i += 2) f[$i] = $(i + 1)
}
$1 == "load" {
	r = f["rate"]; n = f["reader"]; seenreader[n] = 1
	if (!(r in seen)) { seen[r] = 1; order[++nrates] = r }
	add(r SUBSEP n, f["ms_per_1k"]); add("bpf" SUBSEP r SUBSEP n, f["bpf_ms_per_1k"]); add("ev" SUBSEP r SUBSEP n, f["events"])
	if (f["lost"] != 0 || f["log_gaps"] != 0 || (f["gaps"] != "-" && f["gaps"] != 0) || (f["unknown"] != "-" && f["unknown"] != 0) ||
		(f["laurel_events"] != "-" && f["laurel_events"] < f["events"]))
		bad[++nbad] = sprintf("  %s rate %s round %s: lost %s, serial gaps %s (contid's count %s), audit_unknown_subject %s, laurel events %s of %s",
			n, r, f["round"], f["lost"], f["log_gaps"], f["gaps"], f["unknown"], f["laurel_events"], f["events"])
	if (f["late"] > 0.01 * f["execs"] && r != 0) late[++nlate] = sprintf("  %s rate %s round %s: %d of %d starts late", n, r, f["round"], f["late"], f["execs"])
}
$1 == "idle" { add("idle" SUBSEP f["reader"], f["cpu_pct"]); add("wake" SUBSEP f["reader"], f["wakeups_per_s"]) }
END {
	print "CPU per 1,000 events, ms (median of rounds; contid includes its eBPF programs' run time)"
	printf "%-9s %9s %9s %9s %9s %11s %11s\n", "exec/s", "contid", "(eBPF)", "auditd", "+laurel", "c/auditd", "c/laurel"
	for (i = 1; i <= nrates; i++) {
		r = order[i]
		c = median(r SUBSEP "contid"); a = median(r SUBSEP "auditd"); l = median(r SUBSEP "laurel")
		printf "%-9s %9s %9s %9s %9s %11s %11s\n", r == 0 ? "flat out" : r, num(c, "%.1f"), num(median("bpf" SUBSEP r SUBSEP "contid"), "%.1f"),
			num(a, "%.1f"), num(l, "%.1f"), ratio(c, a), ratio(c, l)
	}
	if (cnt["idle" SUBSEP "contid"] + cnt["idle" SUBSEP "auditd"] + cnt["idle" SUBSEP "laurel"] > 0) {
		printf "%-9s %8s%% %9s %8s%% %8s%%   CPU, idle\n", "idle", num(median("idle" SUBSEP "contid"), "%.3f"), "",
			num(median("idle" SUBSEP "auditd"), "%.3f"), num(median("idle" SUBSEP "laurel"), "%.3f")
		printf "%-9s %9s %9s %9s %9s   wakeups/s, idle\n", "", num(median("wake" SUBSEP "contid"), "%.1f"), "",
			num(median("wake" SUBSEP "auditd"), "%.1f"), num(median("wake" SUBSEP "laurel"), "%.1f")
	}
	if (seenreader["contid-noindex"]) {
		print "Keeping the search index: contid against contid-noindex (search_index = false)"
		printf "%-9s %9s %9s %11s\n", "exec/s", "contid", "noindex", "index share"
		for (i = 1; i <= nrates; i++) {
			r = order[i]
			c = median(r SUBSEP "contid"); x = median(r SUBSEP "contid-noindex")
			printf "%-9s %9s %9s %11s\n", r == 0 ? "flat out" : r, num(c, "%.1f"), num(x, "%.1f"),
				c == "" || x == "" || c == 0 ? "-" : sprintf("%.1f%%", 100 * (c - x) / c)
		}
	}
	if (nbad) { print "Runs with loss (their figures are not comparable):"; for (i = 1; i <= nbad; i++) print bad[i] }
	else print "Every run: kernel lost delta 0, serial gaps 0, audit_unknown_subject 0."
	if (nlate) { print "Runs whose load fell behind its timetable (over 1% of starts late):"; for (i = 1; i <= nlate; i++) print late[i] }
}
