package group_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runnel-dev/runnel"
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
