package runnel

import (
	"bytes"
	"strings"
	"testing"

	"github.com/runnel-dev/runnel/internal/plan"
)

func emptyFlow(args []string) (*Dataflow, error) { return plan.New("f"), nil }

func TestMainExitCodes(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tc := range []struct {
		name   string
		args   []string
		env    map[string]string
		code   int
		stdout string
		stderr string
	}{
		{"help", []string{"-h"}, nil, 0, "--workers-per-process", ""},
		{"bad flag value", []string{"-w", "abc"}, nil, 2, "", "-w"},
		{"bad env", nil, map[string]string{"RUNNEL_WORKERS_PER_PROCESS": "x"}, 2, "", "RUNNEL_WORKERS_PER_PROCESS"},
		{"-r without -s", []string{"-r", "dir", "-b", "0"}, nil, 2, "", "-s"},
		{"negative interval", []string{"-s", "-1"}, nil, 2, "", ""},
		{"flow error", nil, nil, 1, "", "no input step"},
		{"bad --api-addr", []string{"--api-addr", "localhost"}, nil, 2, "", "--api-addr"},
		{"bad RUNNEL_API_ADDR", nil, map[string]string{"RUNNEL_API_ADDR": ":x"}, 2, "", "RUNNEL_API_ADDR"},
		{"--api-pprof without --api-addr", []string{"--api-pprof"}, nil, 2, "", "--api-pprof needs --api-addr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := mainWith(append([]string{"prog"}, tc.args...), env(tc.env), &out, &errb, emptyFlow)
			if code != tc.code || !strings.Contains(out.String(), tc.stdout) || !strings.Contains(errb.String(), tc.stderr) {
				t.Errorf("exit %d (want %d)\nstdout: %s\nstderr: %s", code, tc.code, out.String(), errb.String())
			}
		})
	}
}

// The KV type prints Python-style whatever its parts.
func TestKVString(t *testing.T) {
	for _, tc := range []struct {
		got  string
		want string
	}{
		{KV[string, string]{Key: "a", Value: "b"}.String(), "('a', 'b')"},
		{KV[uint8, bool]{Key: 1, Value: true}.String(), "(1, True)"},
		{KV[string, *int]{Key: "nil", Value: nil}.String(), "('nil', None)"},
		{KV[string, float64]{Key: "f", Value: 2}.String(), "('f', 2.0)"},
		{KV[string, KV[string, int]]{Key: "n", Value: KV[string, int]{Key: "x", Value: 1}}.String(), "('n', ('x', 1))"},
		{KV[string, string]{Key: "q", Value: "a'b\n"}.String(), `('q', "a'b\n")`},
	} {
		if tc.got != tc.want {
			t.Errorf("got %s, want %s", tc.got, tc.want)
		}
	}
}
