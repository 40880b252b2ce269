package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestDemo runs the no-flag demo (embedded broker, demo words, exactly-once
// counts read back read_committed) on 1 and 3 workers: the printed counts
// are the words' frequencies whatever the worker count.
func TestDemo(t *testing.T) {
	want := map[string]string{"to": "('to', 4)", "be": "('be', 2)", "a": "('a', 2)", "arms": "('arms', 1)"}
	for _, args := range [][]string{nil, {"-w", "3", "-s", "1ms"}} {
		var out, errOut bytes.Buffer
		if code := demo(ownFlags{in: "words", out: "counts", timeout: time.Minute}, args, &out, &errOut); code != 0 {
			t.Fatalf("demo %q: exit %d: %s", args, code, errOut.String())
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if !strings.Contains(lines[0], "wrote 25 words") || len(lines) != 19 {
			t.Fatalf("demo %q printed:\n%s", args, out.String())
		}
		for _, w := range want {
			if !strings.Contains(out.String(), w+"\n") {
				t.Errorf("demo %q: no line %s in:\n%s", args, w, out.String())
			}
		}
	}
}

func TestBadFlags(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := demo(ownFlags{in: "words", out: "counts"}, []string{"--bogus"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "bogus") || out.Len() > 0 {
		t.Errorf("exit %d, stdout %q, stderr %q; want 2 naming --bogus before starting anything", code, out.String(), errOut.String())
	}
	if _, _, err := parseOwnFlags([]string{"--in"}); err == nil || !strings.Contains(err.Error(), "--in") {
		t.Errorf("--in without a value: %v", err)
	}
	// --brokers is Runnel's flag: left for runnel.ParseConfig, with its value.
	own, rest, err := parseOwnFlags([]string{"--brokers", "127.0.0.1:9092", "--in", "w", "-w", "2"})
	if err != nil || own.in != "w" || !slices.Equal(rest, []string{"--brokers", "127.0.0.1:9092", "-w", "2"}) {
		t.Errorf("parseOwnFlags: %+v, %q, %v", own, rest, err)
	}
}
