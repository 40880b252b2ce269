// Package engine is Runnel's execution core: the per-worker scheduling
// loop, barriers and their alignment, key exchange between workers, and
// snapshot collection.
//
// A Worker is a plain, single-threaded state machine, like etcd raft's
// RawNode: it never starts goroutines, never reads the wall clock and never
// touches files or sockets. The caller (internal/runner, or a test) owns
// those:
//
//   - it delivers messages from other workers with Deliver;
//   - it calls Step, which polls sources, runs operators on batches, closes
//     epochs when the injected Clock says so and hands outgoing batches to
//     the Transport (which must not block);
//   - it persists the rows a worker reports through the Committer, and only
//     then records the epoch as committed;
//   - it sleeps until Deadline or until a message arrives.
//
// # Epochs and barriers
//
// Every input stamps what it reads with the worker's current epoch. When
// the epoch ends, each input emits a barrier that travels behind the
// epoch's items along every edge. A step with several input channels (a
// merge, a join, or an exchange fed by W workers) aligns barriers in its
// Gate: after barrier e arrives on one channel, later events on that channel
// wait until barrier e has arrived on all of them. A stateful step that has
// aligned barrier e therefore holds exactly the items of epochs <= e, which
// is what it snapshots. End of input is a barrier at infinity (EOF).
//
// # Two-phase sinks
//
// A two-phase sink makes its output visible only together with the epoch
// that produced it, as Flink's TwoPhaseCommitSinkFunction and Kafka
// transactions do. The contract between the engine and a sink partition,
// in the order things happen:
//
//  1. Write. WriteBatch receives the items of the open epoch. They may go
//     to the external system at once, but must stay invisible to readers
//     (inside an open transaction).
//  2. Pre-commit. When barrier e has reached the sink on this worker, the
//     engine calls PreCommit(e). The partition makes everything written so
//     far durable but still invisible (flushes the transaction) and returns
//     what it needs to finish it later: a transactional id, a producer id
//     and epoch. With a recovery directory the engine stores that value in
//     snapshot e, in the same commit as every other step's state for e. An
//     error stops the run before e can commit. PreCommit is called at every
//     barrier, with or without a recovery directory.
//  3. Committed. Once epoch e is durable (every worker's snapshots for e
//     are written and the frontier says e+1; without a recovery directory,
//     once every worker has passed barrier e), the engine calls
//     Committed(e) on the worker that owns the partition, on that worker's
//     goroutine. The partition commits everything it pre-committed for
//     epochs <= e. One call may cover several epochs, and items of later
//     epochs may already have arrived through WriteBatch: a partition that
//     can hold one transaction at a time needs a second one (a pool) for
//     them. An error from Committed stops the run; the next run finishes
//     the commit from the stored state (step 4), so nothing is lost.
//     At the end of a run (end of input or a clean stop) the last epoch is
//     committed before Close. At the end of input, what steps emit after
//     the last barrier (final aggregations, window flushes) is pre-committed
//     with PreCommit(EOF), not stored, and committed with Committed(EOF)
//     once the last epoch is durable; a crash before then replays the last
//     epoch, which reaches the end again.
//  4. Resume. The next execution hands the state stored with the newest
//     committed snapshot back to the sink's Build. Its epoch is committed
//     in recovery data, so the sink must finish what that state names
//     (commit it; a commit that already happened must succeed again, and a
//     commit that cannot be done is an error, never a silent loss), and
//     abort anything newer: those epochs are replayed.
//  5. Failure. A run that fails, or is killed, never calls Committed for
//     the epochs that were not durable, and Close must not commit.
//
// A TwoPhaseSink may have a method CheckEpochInterval(time.Duration) error:
// it is called with the snapshot interval before the run starts (a Kafka
// sink refuses an interval too close to its transaction timeout).
//
// Rescaling: a TwoPhaseSink keeps one state per worker (key "worker-N").
// When a run has fewer workers than the last, worker i also receives the
// states of the old workers j >= workers with j mod workers == i, finishes
// them in Build, and the engine deletes them from recovery data at the
// first barrier, once the new run's own states replace them.
package engine

import (
	"math"
	"time"
)

// Epoch numbers the intervals of input between barriers. Epoch 0 is never
// used, so that "aligned through epoch 0" means "nothing closed yet" for a
// run starting at epoch 1.
type Epoch = uint64

// EOF is the frontier of a channel that has ended.
const EOF Epoch = math.MaxUint64

// Clock is the time source of a run: wall time, or a test's manual clock.
// The engine only reads Now; the caller that drives a worker waits for its
// Deadline with At.
type Clock interface {
	Now() time.Time
	// At returns a channel that receives the clock's time once it reads t
	// or later (at once if it already does). The deadline is absolute, so
	// that a manual clock advanced between Now and At cannot push it back.
	At(t time.Time) <-chan time.Time
}

// MsgKind says what a Message carries.
type MsgKind uint8

// The kinds of message that cross between workers.
const (
	MsgData    MsgKind = iota + 1 // a batch of items
	MsgBarrier                    // the sender closed Epoch on this edge
	MsgEOF                        // the sender's side of this edge ended
)

// Message is one event on an exchange edge from one worker to another.
// Batch holds a []T whose ownership passes to the receiver.
type Message struct {
	Edge  int
	From  int
	Kind  MsgKind
	Epoch Epoch
	Batch any
	Len   int // items in Batch, for flow control
}

// Transport moves messages between workers. Send must not block: a bounded
// amount is in flight because workers stop polling their sources while
// Outstanding is above their limit, not because sends wait.
type Transport interface {
	// Send queues m for worker to.
	Send(to int, m Message)
	// Release returns n items of flow-control credit to worker from, once
	// the receiver no longer holds them.
	Release(from int, n int)
	// Outstanding is how many items sent by worker w are still held by
	// receivers (queued, or buffered for barrier alignment).
	Outstanding(w int) int64
	// Hold charges n items to worker w's credit without a Send, for items a
	// worker buffers for itself during alignment.
	Hold(w int, n int)
}

// Row is one change of state to persist: a step's key set to Value, or
// deleted. Keys are text here; this is the only place they become text.
type Row struct {
	Step    string
	Key     string
	Value   []byte
	Deleted bool
}

// Committer receives what a worker has finished. EpochDone(w, e, rows) means
// every terminal step on worker w has aligned barrier e, and rows are the
// state changes that worker's steps made in epoch e (not yet durable). The
// caller must make them durable, and commit e only once every worker has
// reported it. Done(w, last) says worker w has ended; last is the highest
// epoch it closed.
type Committer interface {
	EpochDone(worker int, e Epoch, rows []Row)
	Done(worker int, last Epoch)
}

// ChangedRows turns the keys a keyed step changed in an epoch into recovery
// rows, one per key however often it is listed when mayRepeat (a caller that
// knows changed lists every key once passes false and skips the set that
// removes repeats). encode returns a key's encoded state, or ok false when
// the key has none any more (a deletion). An encoding error is returned
// with the key's text.
func ChangedRows[K comparable](step string, changed []K, mayRepeat bool, format func(K) string, encode func(K) (value []byte, ok bool, err error)) (rows []Row, key string, err error) {
	var seen map[K]struct{}
	if mayRepeat {
		seen = make(map[K]struct{}, len(changed))
	}
	rows = make([]Row, 0, len(changed))
	for _, k := range changed {
		if seen != nil {
			if _, dup := seen[k]; dup {
				continue
			}
			seen[k] = struct{}{}
		}
		text := format(k)
		b, ok, err := encode(k)
		switch {
		case err != nil:
			return nil, text, err
		case !ok:
			rows = append(rows, Row{Step: step, Key: text, Deleted: true})
		default:
			rows = append(rows, Row{Step: step, Key: text, Value: b})
		}
	}
	return rows, "", nil
}
