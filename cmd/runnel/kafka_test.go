package main

import (
	"strings"
	"testing"
)

// TestKafkaServeUsage: bad invocations of `runnel kafka serve` are usage
// errors (exit 2) naming the problem; a non-loopback address is refused.
// The broker itself runs in connector/kafka's real-process tests.
func TestKafkaServeUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"kafka"}, 2, "missing kafka command (serve)"},
		{[]string{"kafka", "serve", "--bogus"}, 2, "unknown flag: --bogus"},
		{[]string{"kafka", "serve", "extra"}, 2, "takes no arguments"},
		{[]string{"kafka", "serve", "--topic", "t:0"}, 2, "partitions must be a positive integer"},
		{[]string{"kafka", "serve", "--addr", "10.1.2.3:9092"}, 1, "127.0.0.1 only"},
		{[]string{"kafka", "serve", "--group-min-session-timeout", "0s"}, 2, "--group-min-session-timeout: 0s is not a positive duration"},
		{[]string{"kafka", "serve", "--group-min-session-timeout", "soon"}, 2, "invalid argument"},
	} {
		code, _, errs := runCLI(c.args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("%q: code %d, stderr %q; want code %d and %q", c.args, code, errs, c.code, c.want)
		}
	}
}
