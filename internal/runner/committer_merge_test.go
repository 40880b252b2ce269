package runner

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/runnel-dev/runnel/internal/engine"
	"github.com/runnel-dev/runnel/recovery"
)

// TestLaggingEpochsMergedIntoOneWrite: epochs that queue up while the
// writer is busy are persisted in one write whose rows keep each key's
// latest state (a key changed in two of them ends with the later value;
// a deletion wins over an earlier value), and the last of them is
// committed.
func TestLaggingEpochsMergedIntoOneWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	if err := recovery.Init(dir, 2); err != nil {
		t.Fatal(err)
	}
	store, err := recovery.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	current := map[string]recovery.StepState{"f.s": {Type: "int"}}
	if _, err := store.Begin("f", 1, recovery.MakePlan(nil, current, nil)); err != nil {
		t.Fatal(err)
	}
	c := newCommitter(1, 1, store, 0, 0, func(err error) { t.Error(err) })
	var writes []int
	c.beforeWrite = func(n int) { writes = append(writes, n) }
	row := func(k, v string) engine.Row { return engine.Row{Step: "f.s", Key: k, Value: []byte(v)} }
	c.EpochDone(0, 1, []engine.Row{row("a", "a1"), row("b", "b1"), row("d", "d1")})
	c.EpochDone(0, 2, []engine.Row{row("a", "a2"), {Step: "f.s", Key: "d", Deleted: true}})
	c.EpochDone(0, 3, []engine.Row{row("c", "c3")})
	c.start() // the writer starts with three epochs queued
	if err := c.close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(writes, []int{3}) {
		t.Errorf("writes of %v epochs, want one write of 3", writes)
	}
	if got := c.committedEpoch(); got != 3 {
		t.Errorf("committed epoch %d, want 3", got)
	}
	got := map[string]string{}
	if err := store.Load(4, func(step, key string, value []byte) error {
		got[key] = string(value)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"a": "a2", "b": "b1", "c": "c3"}, got); diff != "" {
		t.Errorf("state loaded after the merged write (-want +got):\n%s", diff)
	}
}
