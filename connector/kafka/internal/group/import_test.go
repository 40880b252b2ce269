package group_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/kafka"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/recovery"
)

// A one-process run with -r is stopped, --from-recovery seeds a new group
// from its directory, and the group carries on: every word's count goes on
// from the one-process run's (no count starts over at 1) and no input is
// read twice (no count appears twice). A second import is refused.
func TestImportFromRecovery(t *testing.T) {
	brokers := cluster(t, map[string]int32{"in": 4, "out": 2})
	flow := countFlow(brokers)
	const first, second = 300, 200
	produce(t, brokers, "in", words(0, first)...)

	dir := filepath.Join(t.TempDir(), "db")
	if err := recovery.Init(dir, 2); err != nil {
		t.Fatal(err)
	}
	one := runnel.DefaultConfig()
	one.WorkersPerProcess, one.RecoveryDir, one.SnapshotInterval = 2, dir, 100*time.Millisecond
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- runnel.Run(context.Background(), flow, one, runnel.WithStop(stop)) }()
	checkExactlyOnce(t, readCounts(t, brokers, first, time.Minute), first)
	close(stop)
	if err := <-done; !errors.Is(err, runnel.ErrInterrupted) {
		t.Fatalf("one-process run: %v, want a stop", err)
	}

	seed := func() (string, error) {
		cfg, _, err := runnel.ParseConfig("test", []string{"--group", "app", "--brokers", strings.Join(brokers, ","),
			"--from-recovery", dir})
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		err = runnel.Run(context.Background(), flow, cfg, runnel.WithOutput(&out))
		return out.String(), err
	}
	report, err := seed()
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	for _, want := range []string{"imported " + dir, "group_count.count: 37 key(s) -> app.group_count.count.changelog",
		"group offsets: in/0=", "Start the members now"} {
		if !strings.Contains(report, want) {
			t.Errorf("the import's report lacks %q:\n%s", want, report)
		}
	}

	produce(t, brokers, "in", words(first, first+second)...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := startMember(ctx, t, flow, brokers, 2)
	b := startMember(ctx, t, flow, brokers, 1)
	checkExactlyOnce(t, readCounts(t, brokers, first+second, time.Minute), first+second)
	a.end(t)
	b.end(t)

	if _, err := seed(); err == nil || !strings.Contains(err.Error(), "already has committed offsets") {
		t.Errorf("a second import: %v, want a refusal naming the committed offsets", err)
	}
}

// otherFlow is countFlow under another dataflow id.
func otherFlow(brokers []string) *runnel.Dataflow {
	flow := runnel.NewDataflow("other_count")
	msgs := op.Input("in", flow, kafka.NewSource(brokers, []string{"in"}))
	words := kafka.MustDecode("decode", msgs, kafka.String(), kafka.String())
	keyed := op.KeyOn("key", words, func(r kafka.Record[string, string]) string { return r.Value })
	counts := op.StatefulMap("count", keyed, func(n int, _ bool, _ kafka.Record[string, string]) (int, bool, int) {
		return n + 1, true, n + 1
	})
	op.Output("out", kafka.Encode("encode", counts, "out", kafka.String(), kafka.JSON[int]()), kafka.NewSink(brokers, kafka.ExactlyOnce()))
	return flow
}

// --from-recovery refuses, with the cause, every import that could lose or
// mix up state: nothing committed yet, a directory in use by a run,
// another dataflow's directory, a group with live members.
func TestImportRefusals(t *testing.T) {
	brokers := cluster(t, map[string]int32{"in": 4, "out": 2})
	produce(t, brokers, "in", words(0, 50)...)
	dir := filepath.Join(t.TempDir(), "db")
	if err := recovery.Init(dir, 1); err != nil {
		t.Fatal(err)
	}
	seed := func(flow *runnel.Dataflow, group string) error {
		cfg, _, err := runnel.ParseConfig("test", []string{"--group", group, "--brokers", strings.Join(brokers, ","), "--from-recovery", dir})
		if err != nil {
			t.Fatal(err)
		}
		return runnel.Run(context.Background(), flow, cfg)
	}
	refused := func(err error, want string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "--from-recovery "+dir) {
			t.Errorf("import: %v, want a refusal naming the directory and %q", err, want)
		}
	}
	refused(seed(countFlow(brokers), "fresh"), "nothing was committed there yet")

	one := runnel.DefaultConfig()
	one.RecoveryDir, one.SnapshotInterval = dir, 50*time.Millisecond
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- runnel.Run(context.Background(), countFlow(brokers), one, runnel.WithStop(stop)) }()
	readCounts(t, brokers, 50, time.Minute)
	refused(seed(countFlow(brokers), "busy"), "in use")
	close(stop)
	if err := <-done; !errors.Is(err, runnel.ErrInterrupted) {
		t.Fatalf("one-process run: %v", err)
	}

	refused(seed(otherFlow(brokers), "other"), `it holds dataflow "group_count", this is "other_count"`)
	adm := kadm.NewClient(kgoClient(t, brokers))
	if td, err := adm.ListTopics(context.Background(), "other.meta"); err != nil || td.Has("other.meta") {
		t.Errorf("a refused import left topic other.meta behind (%v)", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := startMember(ctx, t, countFlow(brokers), brokers, 1)
	deadline := time.Now().Add(time.Minute)
	var err error
	for time.Now().Before(deadline) {
		if err = seed(countFlow(brokers), "app"); err != nil && strings.Contains(err.Error(), "live member") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	refused(err, "live member")
	m.end(t)
}

func kgoClient(t *testing.T, brokers []string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}
