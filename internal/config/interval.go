package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// intervalSyntax is the reminder appended to every interval syntax error.
const intervalSyntax = "want seconds (30, 0.05) or a Go duration (30s, 50ms, 1m30s)"

// ParseInterval parses the value of -s/--snapshot-interval and
// -b/--backup-interval.
//
// A plain decimal number is a count of seconds, as in Bytewax: "30" is 30s
// and "0.05" is 50ms (digits beyond nanoseconds are truncated). Anything else
// must be a Go duration as accepted by [time.ParseDuration]: "30s", "50ms",
// "1m30s". The empty string, other text ("abc"), negative intervals, NaN,
// infinities, exponents ("1e3") and values that overflow a [time.Duration]
// (about 292 years) are rejected, and so are values below 1ns, which
// would otherwise truncate to 0. Zero is accepted here; whether it is allowed
// depends on the flag (-b 0 is fine, -s 0 is not).
func ParseInterval(s string) (time.Duration, error) {
	if s == "" {
		return 0, fmt.Errorf("empty interval: %s", intervalSyntax)
	}
	if isDecimal(s) {
		d, err := parseSeconds(s)
		if err == nil && d == 0 && hasNonZeroDigit(s) {
			return 0, fmt.Errorf("interval %q is shorter than 1ns, the smallest interval", s)
		}
		return d, err
	}
	if strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("interval %q is negative", s)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		// time.ParseDuration says "invalid duration" for both bad syntax
		// and overflow; so do we, with the accepted forms.
		return 0, fmt.Errorf("invalid interval %q: %s, at most about 292 years", s, intervalSyntax)
	}
	if d < 0 {
		return 0, fmt.Errorf("interval %q is negative", s)
	}
	if d == 0 && hasNonZeroDigit(s) {
		return 0, fmt.Errorf("interval %q is shorter than 1ns, the smallest interval", s)
	}
	return d, nil
}

// hasNonZeroDigit reports whether s has a digit other than 0, so that an
// interval that truncates to zero is not mistaken for "0".
func hasNonZeroDigit(s string) bool { return strings.ContainsAny(s, "123456789") }

// isDecimal reports whether s is digits with at most one '.', and at least
// one digit: "30", "0.05", ".5", "5.".
func isDecimal(s string) bool {
	digits, dots := 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.':
			dots++
		default:
			return false
		}
	}
	return digits > 0 && dots <= 1
}

var errIntervalOverflow = errors.New("too large (the maximum is about 292 years)")

// parseSeconds converts a decimal count of seconds exactly, without going
// through float64 (so "0.05" is exactly 50ms and big values do not round).
func parseSeconds(s string) (time.Duration, error) {
	intPart, frac, _ := strings.Cut(s, ".")
	var secs int64
	if intPart != "" {
		n, err := strconv.ParseInt(intPart, 10, 64)
		if err != nil || n > math.MaxInt64/int64(time.Second) {
			return 0, fmt.Errorf("interval %q is %w", s, errIntervalOverflow)
		}
		secs = n
	}
	var nanos int64
	for i := 0; i < 9; i++ {
		nanos *= 10
		if i < len(frac) {
			nanos += int64(frac[i] - '0')
		}
	}
	total := secs * int64(time.Second)
	if total > math.MaxInt64-nanos {
		return 0, fmt.Errorf("interval %q is %w", s, errIntervalOverflow)
	}
	return time.Duration(total + nanos), nil
}
