// Package recovery stores Runnel's recovery data: per-epoch snapshots of
// every stateful step's state, each worker's committed progress, and the
// history of executions, in N SQLite partition files that let a failed or
// finished run resume where it left off, with any number of workers.
//
// SQLite (pure Go, modernc.org/sqlite) is an implementation detail of this
// package; the file format below is not. It is a public, versioned contract
// (FormatVersion, recorded in every file): the files stay readable with the
// sqlite3 command-line tool, and a release refuses files of a newer format.
//
// # Usage
//
// A run with recovery calls, in this order:
//
//  1. [Open] the directory created by [Init] (`runnel recovery init DIR N`).
//  2. [Store.StepTypes], then [MakePlan] with the flow's stateful steps and
//     the --drop-state list; print [Plan.String] if asked.
//  3. [Store.Begin]: it refuses a plan that would lose state, and returns the
//     resume epoch.
//  4. [Store.Load] the state before the resume epoch and route each key to
//     the worker that now owns it.
//  5. For every epoch e: once every worker's state for e is known,
//     [Store.WriteEpoch](e, rows); once every worker has written and flushed
//     its sinks for e, [Store.Commit](ex, workers, e+1, keepEpochs).
//  6. [Store.Close].
//
// An error from Begin, WriteEpoch or Commit ends the run; re-running with
// the same directory resumes from the last committed epoch.
//
// # Files
//
// DIR/part-0.sqlite3 … part-{N-1}.sqlite3, in WAL mode. The rows of state key
// K of step S live in partition [PartitionFor](S, K, N) =
// xxhash64(S + "\x00" + K) mod N. The small tables (meta except
// partition_index, steps, executions, fronts) are written into every
// partition, so that any single file describes the run.
//
// # Schema (format 1)
//
//	CREATE TABLE meta(name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
//	CREATE TABLE steps(step_id TEXT PRIMARY KEY, state_type TEXT NOT NULL) WITHOUT ROWID;
//	CREATE TABLE executions(ex_num INTEGER PRIMARY KEY, worker_count INTEGER NOT NULL,
//	    resume_epoch INTEGER NOT NULL);
//	CREATE TABLE fronts(ex_num INTEGER NOT NULL, worker_index INTEGER NOT NULL,
//	    worker_frontier INTEGER NOT NULL, PRIMARY KEY(ex_num, worker_index)) WITHOUT ROWID;
//	CREATE TABLE snaps(step_id TEXT NOT NULL, state_key TEXT NOT NULL, epoch INTEGER NOT NULL,
//	    ser_change BLOB, PRIMARY KEY(step_id, state_key, epoch)) WITHOUT ROWID;
//	CREATE INDEX snaps_epoch ON snaps(epoch);
//	CREATE INDEX snaps_deleted ON snaps(epoch) WHERE ser_change IS NULL;
//
// meta rows: format_version ("1"), partition_index, partition_count, codec
// (the state codec, "cbor-core-det/v1"), flow_id ("" until the first
// execution), created_by ("runnel"), gc_epoch (rows before it have been
// garbage-collected; "0" initially).
//
// steps: the state type (a Go type string) of each stateful step of the
// flow as of the last execution.
//
// executions: one row per run: its number (0, 1, …), its total worker count
// and the epoch it resumed from.
//
// fronts: per execution and worker, the committed frontier: every epoch
// before it is durable (state written, sinks flushed).
//
// snaps: the state of state_key of step_id after epoch, encoded with the
// codec; NULL means the state was deleted in that epoch. Only changed keys
// get a row per epoch.
//
// # Semantics
//
// The resume epoch of a new execution is the minimum, over the previous
// execution's workers and over all partitions, of their frontier (a worker
// without a fronts row counts as that execution's resume epoch). The state
// of (step, key) at resume epoch R is its newest snaps row with epoch < R,
// absent if there is none or it is NULL. Rows with epoch >= R are deleted when
// the execution begins.
//
// Garbage collection keeps every row needed to resume from any epoch >= H,
// where H = committed frontier - keepEpochs (the backup interval, so that a
// copy of the directory up to that old still resumes): a row is deleted when
// a newer row of the same key exists before H, and a NULL row before H with
// nothing older is deleted too.
//
// # Durability
//
// Every transaction commits with synchronous=FULL in WAL mode, so a nil error
// from [Init], [Store.Begin], [Store.WriteEpoch] or [Store.Commit] means the
// data survives a process kill (SIGKILL) and power loss. Each call writes one
// transaction per partition; partitions are not committed atomically
// together, and the rules above (commit only after writing, resume from the
// minimum frontier over partitions) make any interleaving of partial writes
// resume from a consistent epoch.
//
// Only one process may open a recovery directory at a time; this is not
// enforced by a lock.
package recovery
