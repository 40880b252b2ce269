package main

import (
	"strings"
	"testing"
	"time"
)

// The example runs as real processes in connector/kafka/internal/groupe2e
// (a broker process, members killed, added and removed); these tests
// check its flags and its flow without a broker.

func TestOwnFlags(t *testing.T) {
	o, rest, err := parseOwnFlags([]string{"--in", "a", "--counts=b", "-w", "2", "--windows", "c", "--window", "1m", "--wait=30s", "--group", "g"})
	if err != nil {
		t.Fatal(err)
	}
	want := Options{In: "a", Counts: "b", Windows: "c", Window: time.Minute, Wait: 30 * time.Second}
	if o != want || strings.Join(rest, " ") != "-w 2 --group g" {
		t.Errorf("got %+v, rest %q; want %+v, rest [-w 2 --group g]", o, rest, want)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--window", "0s"}, "--window"},
		{[]string{"--wait", "soon"}, "--wait"},
		{[]string{"--in"}, "--in needs a value"},
		{[]string{"--counts="}, "--counts is empty"},
	} {
		if _, _, err := parseOwnFlags(c.args); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want an error naming %s", c.args, err, c.want)
		}
	}
}

func TestFlowValidates(t *testing.T) {
	if err := Flow([]string{"127.0.0.1:9092"}, DefaultOptions()).Validate(); err != nil {
		t.Fatal(err)
	}
}
