package group

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestAbortedRecordsAreNotProduceErrors: records failed because the
// member aborted their transaction (kgo.ErrAborting: a rebalance or a stop
// ended the epoch) are discarded on purpose, and must not fail the next
// epoch; any other produce error must. (A real-process run failed with
// "produce to windows/2: client is aborting buffered records" after a
// revoke.)
func TestAbortedRecordsAreNotProduceErrors(t *testing.T) {
	m := &member{set: Settings{App: "app"}}
	m.onProduced(&kgo.Record{Topic: "out", Partition: 2}, kgo.ErrAborting)
	if err := m.takeProduceErr(); err != nil {
		t.Fatalf("an aborted record became a produce error: %v", err)
	}
	boom := errors.New("boom")
	m.onProduced(&kgo.Record{Topic: "out", Partition: 2}, boom)
	if err := m.takeProduceErr(); !errors.Is(err, boom) {
		t.Fatalf("produce error = %v, want %v", err, boom)
	}
}
