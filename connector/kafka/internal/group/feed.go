// Package group runs a dataflow as one member of a Kafka consumer group
// (group mode, DESIGN section 4): the group protocol assigns the input
// topics' partitions and the key groups of every keyed step (the
// partitions of its repartition topic) to the members; each member runs
// the whole flow on its workers over what it owns, keeps keyed state in
// compacted changelog topics, and commits one Kafka transaction per
// epoch that holds its output, its repartition and changelog records and
// its consumed offsets.
//
// The Kafka connector reaches the member through its build context
// (FromContext): its source reads the partitions the member polled, and
// its sink writes inside the member's transaction.
package group

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Member is what a Kafka source or sink sees of the group member it runs
// in.
type Member interface {
	// Assigned returns the partitions of topics assigned to this member,
	// as "topic/N" names (an input step reads them).
	Assigned(topics []string) ([]string, error)
	// Queue is where the member puts the records it polls from one
	// assigned partition for the worker that reads it.
	Queue(worker int, topic string, partition int32) *Queue
	// Produce writes r inside the member's open transaction. With manual
	// true the record keeps its Partition; otherwise its key picks it.
	// Errors surface when the epoch commits.
	Produce(r *kgo.Record, manual bool)
}

type memberKey struct{}

// WithMember returns ctx carrying m, for the build code of Kafka sources
// and sinks.
func WithMember(ctx context.Context, m Member) context.Context {
	return context.WithValue(ctx, memberKey{}, m)
}

// FromContext returns the member a source or sink is built in, or nil
// outside group mode.
func FromContext(ctx context.Context) Member {
	if ctx == nil {
		return nil
	}
	m, _ := ctx.Value(memberKey{}).(Member)
	return m
}

// Queue holds polled records of one partition until its worker reads
// them. It counts what it holds in its worker's counter, so that the
// member can tell when a worker has read everything of an epoch.
type Queue struct {
	mu      sync.Mutex
	recs    []*kgo.Record
	pending *atomic.Int64 // the worker's queued records
	wake    func()
}

func newQueue(pending *atomic.Int64, wake func()) *Queue {
	return &Queue{pending: pending, wake: wake}
}

func (q *Queue) push(rs []*kgo.Record) {
	q.mu.Lock()
	q.recs = append(q.recs, rs...)
	q.mu.Unlock()
	q.pending.Add(int64(len(rs)))
}

// Len is the number of records queued.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.recs)
}

// Take appends up to max queued records to buf and removes them.
func (q *Queue) Take(buf []*kgo.Record, max int) []*kgo.Record {
	q.mu.Lock()
	n := min(len(q.recs), max)
	buf = append(buf, q.recs[:n]...)
	clear(q.recs[:n])
	q.recs = q.recs[n:]
	if len(q.recs) == 0 {
		q.recs = nil
	}
	q.mu.Unlock()
	q.pending.Add(-int64(n))
	return buf
}
