package search

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Clock is what the relative time words need: the current time, the boot
// time and the zone dates are read in.
type Clock struct {
	Now  time.Time
	Boot time.Time
	Loc  *time.Location
}

var (
	dateRE = regexp.MustCompile(`^(\d{1,2})/(\d{1,2})/(\d{2}|\d{4})$`)
	timeRE = regexp.MustCompile(`^(\d{1,2}):(\d{2})(?::(\d{2}))?$`)
)

// IsTimeOfDay reports whether s is HH:MM or HH:MM:SS, the second word of
// ausearch's -ts/-te.
func IsTimeOfDay(s string) bool { return timeRE.MatchString(s) }

// ParseTime reads a -ts (end false) or -te (end true) value as ausearch
// 3.0.9 does: "[DATE] [TIME]", DATE a word (now, recent, boot, today,
// yesterday, this-week, week-ago, this-month, this-year) or MM/DD/YY as
// ausearch takes %x in the C locale (MM/DD/YYYY, %x in en_US, is taken
// too), TIME HH:MM[:SS]. A missing date is today. A missing time is
// midnight for -ts and, as in ausearch, the current time of day for -te
// ("-te today" is now). now, recent (ten minutes ago) and boot are
// instants and take no time. The result is unix seconds.
func ParseTime(spec string, end bool, c Clock) (int64, error) {
	loc := c.Loc
	if loc == nil {
		loc = time.Local
	}
	now := c.Now.In(loc)
	words := strings.Fields(spec)
	if len(words) == 0 || len(words) > 2 {
		return 0, fmt.Errorf("time %q: want [DATE] [TIME]", spec)
	}
	date, tod := words[0], ""
	if len(words) == 2 {
		tod = words[1]
	} else if IsTimeOfDay(date) {
		date, tod = "", date
	}
	midnight := func(t time.Time) time.Time {
		y, m, d := t.Date()
		return time.Date(y, m, d, 0, 0, 0, 0, loc)
	}
	var day time.Time
	switch date {
	case "now":
		return now.Unix(), nil
	case "recent":
		return now.Add(-10 * time.Minute).Unix(), nil
	case "boot":
		return c.Boot.Unix(), nil
	case "", "today":
		if end && date == "today" && tod == "" {
			return now.Unix(), nil
		}
		day = midnight(now)
	case "yesterday":
		day = midnight(now.AddDate(0, 0, -1))
	case "this-week":
		day = midnight(now.AddDate(0, 0, -int(now.Weekday())))
	case "week-ago":
		day = midnight(now.AddDate(0, 0, -7))
	case "this-month":
		y, m, _ := now.Date()
		day = time.Date(y, m, 1, 0, 0, 0, 0, loc)
	case "this-year":
		day = time.Date(now.Year(), 1, 1, 0, 0, 0, 0, loc)
	default:
		m := dateRE.FindStringSubmatch(date)
		if m == nil {
			return 0, fmt.Errorf("date %q: want MM/DD/YY, MM/DD/YYYY or a word (today, yesterday, this-week, week-ago, this-month, this-year, recent, boot, now)", date)
		}
		mo, _ := strconv.Atoi(m[1])
		d, _ := strconv.Atoi(m[2])
		y, _ := strconv.Atoi(m[3])
		if len(m[3]) == 2 {
			y += 1900 // strptime's %y: 69–99 are 19xx, 00–68 are 20xx
			if y < 1969 {
				y += 100
			}
		}
		if mo < 1 || mo > 12 || d < 1 || d > 31 {
			return 0, fmt.Errorf("date %q: no such month or day", date)
		}
		if y < 2004 {
			return 0, fmt.Errorf("date %q: year %d is before 2004 (ausearch refuses it too)", date, y)
		}
		day = time.Date(y, time.Month(mo), d, 0, 0, 0, 0, loc)
		if day.Day() != d {
			return 0, fmt.Errorf("date %q: no such day", date)
		}
	}
	var h, mi, s int
	switch {
	case tod != "":
		m := timeRE.FindStringSubmatch(tod)
		if m == nil {
			return 0, fmt.Errorf("time %q: want HH:MM or HH:MM:SS", tod)
		}
		h, _ = strconv.Atoi(m[1])
		mi, _ = strconv.Atoi(m[2])
		if m[3] != "" {
			s, _ = strconv.Atoi(m[3])
		}
		if h > 23 || mi > 59 || s > 60 {
			return 0, fmt.Errorf("time %q: out of range", tod)
		}
	case end:
		h, mi, s = now.Clock()
	}
	y, mo, d := day.Date()
	return time.Date(y, mo, d, h, mi, s, 0, loc).Unix(), nil
}
