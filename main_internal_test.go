package runnel

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func emptyFlow(args []string) (*Dataflow, error) { return NewDataflow("f"), nil }

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
		{"absurd -w", []string{"-w", "1000000"}, nil, 2, "", `-w/--workers-per-process: invalid value "1000000": must be at most 1024`},
		{"bad env", nil, map[string]string{"RUNNEL_WORKERS_PER_PROCESS": "x"}, 2, "", "RUNNEL_WORKERS_PER_PROCESS"},
		{"-r without -s", []string{"-r", "dir", "-b", "0"}, nil, 2, "", "-s"},
		{"negative interval", []string{"-s", "-1"}, nil, 2, "", ""},
		{"flow error", nil, nil, 1, "", "no input step"},
		{"bad --api-addr", []string{"--api-addr", "localhost"}, nil, 2, "", "--api-addr"},
		{"bad RUNNEL_API_ADDR", nil, map[string]string{"RUNNEL_API_ADDR": ":x"}, 2, "", "RUNNEL_API_ADDR"},
		{"--api-pprof without --api-addr", []string{"--api-pprof"}, nil, 2, "", "--api-pprof needs --api-addr"},
		{"--group without --brokers", []string{"--group", "app"}, nil, 2, "", "--group needs --brokers"},
		{"RUNNEL_GROUP with -r", []string{"-r", "dir", "-s", "1", "-b", "0"}, map[string]string{"RUNNEL_GROUP": "app", "RUNNEL_BROKERS": "127.0.0.1:9092"}, 2, "", "group mode keeps state in Kafka changelog topics; drop -r"},
		{"--key-groups without --group", []string{"--key-groups", "8"}, nil, 2, "", "--key-groups needs --group"},
		{"bad RUNNEL_BROKERS", nil, map[string]string{"RUNNEL_BROKERS": "kafka"}, 2, "", "RUNNEL_BROKERS"},
		{"--from-recovery without --group", []string{"--from-recovery", "db"}, nil, 2, "", "--from-recovery needs --group"},
		{"removed -a", []string{"-a", "h:1"}, nil, 2, "", "unknown shorthand flag: 'a'"},
		{"removed --process-id", []string{"--process-id", "0"}, nil, 2, "", "unknown flag: --process-id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := mainWith(append([]string{"prog"}, tc.args...), env(tc.env), &out, &errb, emptyFlow, program(true, nil))
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

// The --help text describes the program: its usage line, description and
// examples come from Main's options.
func TestMainHelpDescribesProgram(t *testing.T) {
	var out, errb bytes.Buffer
	code := mainWith([]string{"/tmp/bin/wordcount", "--help"}, func(string) string { return "" }, &out, &errb, emptyFlow,
		program(true, []MainOption{
			WithUsage("[FILE]", "Counts the words of FILE (standard input without one)."),
			WithExample("Count a book's words on four workers.", "wordcount -w 4 book.txt"),
		}))
	if code != 0 || errb.Len() > 0 {
		t.Fatalf("exit %d, stderr %s", code, errb.String())
	}
	for _, want := range []string{
		"Usage: wordcount [flags] [--] [FILE]\n\nCounts the words of FILE (standard input without one).\n",
		"Examples:\n  # Count a book's words on four workers.\n  wordcount -w 4 book.txt\n",
		"wordcount -r db_dir/ -s 30 -b 0",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, out.String())
		}
	}
	// Main's flow takes no arguments: its help shows none.
	out.Reset()
	mainWith([]string{"tutorial", "-h"}, func(string) string { return "" }, &out, &errb, emptyFlow, program(false, nil))
	if !strings.HasPrefix(out.String(), "Usage: tutorial [flags]\n") || strings.Contains(out.String(), "args...") {
		t.Errorf("help of a flow without arguments:\n%s", out.String())
	}
}

// A build function's error is a usage error (exit 2); RUNNEL_DEBUG=1 adds a
// panic's stack after the one-line message.
func TestMainBuildErrorAndDebugStack(t *testing.T) {
	var out, errb bytes.Buffer
	bad := func([]string) (*Dataflow, error) { return nil, errors.New("want one file name") }
	if code := mainWith([]string{"wc", "a", "b"}, func(string) string { return "" }, &out, &errb, bad, program(true, nil)); code != 2 ||
		errb.String() != "wc: want one file name\n" {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
}
