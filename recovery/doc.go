// Package recovery stores Runnel's recovery data: per-epoch snapshots of
// every stateful step's state, each worker's committed progress, and the
// history of executions, in N SQLite partition files that let a failed or
// finished run resume where it left off, with any number of workers.
//
// SQLite (pure Go, modernc.org/sqlite) is an implementation detail of this
// package; the file format below is not. It is a public, versioned contract
// (FormatVersion, recorded in every file): the files stay readable with the
// sqlite3 command-line tool, and a release refuses files of a newer format.
// This release writes format 3 and reads formats 1 to 3 (see "Formats").
//
// # Usage
//
// A run with recovery calls, in this order:
//
//  1. [Open] the directory created by [Init] (`runnel recovery init DIR N`).
//     Open refuses a directory whose partitions cannot be resumed exactly
//     (see "Consistency"); [OpenReadOnly] opens it anyway, for inspection,
//     without changing a byte.
//  2. [Store.StepTypes], then [MakePlan] with the flow's stateful steps
//     (state type and shape) and the --drop-state list; print
//     [Plan.String] if asked.
//  3. [Store.Check] for the resume epoch, and [Store.Load] the state before
//     it (converting the steps the plan migrates, skipping the ones it
//     drops), routing each key to the worker that now owns it: nothing is
//     written yet, so a value that does not load or convert leaves the
//     directory as it was.
//  4. Build the steps, decoding the loaded state (a value that does not
//     decode still leaves the directory as it was), then [Store.Begin]: it
//     checks the directory again, refuses a plan that would lose state, and
//     returns the resume epoch (the same).
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
// # Schema (format 3)
//
//	CREATE TABLE meta(name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
//	CREATE TABLE steps(step_id TEXT PRIMARY KEY, state_type TEXT NOT NULL,
//	    state_shape TEXT NOT NULL DEFAULT '') WITHOUT ROWID;
//	CREATE TABLE executions(ex_num INTEGER PRIMARY KEY, worker_count INTEGER NOT NULL,
//	    resume_epoch INTEGER NOT NULL, exec_id TEXT NOT NULL DEFAULT '');
//	CREATE TABLE fronts(ex_num INTEGER NOT NULL, worker_index INTEGER NOT NULL,
//	    worker_frontier INTEGER NOT NULL, PRIMARY KEY(ex_num, worker_index)) WITHOUT ROWID;
//	CREATE TABLE snaps(step_id TEXT NOT NULL, state_key TEXT NOT NULL, epoch INTEGER NOT NULL,
//	    ser_change BLOB, PRIMARY KEY(step_id, state_key, epoch)) WITHOUT ROWID;
//	CREATE INDEX snaps_epoch ON snaps(epoch);
//	CREATE INDEX snaps_deleted ON snaps(epoch) WHERE ser_change IS NULL;
//	CREATE TABLE changes(seq INTEGER PRIMARY KEY, epoch INTEGER NOT NULL, step_id TEXT NOT NULL,
//	    entries INTEGER NOT NULL, batch TEXT NOT NULL);
//
// meta rows: format_version ("3"), partition_index, partition_count, codec
// (the state codec, "cbor-core-det/v1"), flow_id ("" until the first
// execution), created_by ("runnel"), gc_epoch (rows before it that a newer
// row before it supersedes may have been garbage-collected; "0" initially), and
// dir_id: 32 hex digits, random, given by Init to the directory and recorded
// in each of its partitions, so that a partition of another directory is
// recognised. A row migration:STEP (only while a state migration of step
// STEP is pending, see "Migrations") holds a JSON object
// {"epoch":E,"state_type":T,"state_shape":H}.
//
// steps: the state type (a Go type string) of each stateful step of the
// flow as of the last execution, and state_shape, the codec's fingerprint of
// that type's structure (field names and types, recursively, as encoded;
// "" for a step recorded in format 1). Renaming a field changes the shape
// but not the type string.
//
// executions: one row per run: its number (0, 1, …), its total worker count,
// the epoch it resumed from, and exec_id, 32 random hex digits that tell two
// runs with the same number apart (a copy of the directory run on its own);
// "" for runs recorded in format 1.
//
// fronts: per execution and worker, the committed frontier: every epoch
// before it is durable (state written, sinks flushed).
//
// The state rows: the state of a key of a step after an epoch, encoded
// with the codec, or its deletion in that epoch. Only changed keys get a
// row per epoch. A row lives in one of two tables, and readers take the
// union of both:
//
// snaps: one row per (step_id, state_key, epoch); ser_change NULL means
// deleted. Formats 1 and 2 wrote every row here; format 3 writes none, and
// moves the rows it finds here into the change log when it compacts (below).
//
// changes, the change log: a row is a batch of the rows of one step_id
// and one epoch, written together; seq orders the batches as written.
// batch is a JSON object mapping each state_key to the
// encoded state in lower-case hex, or to null for a deletion; a key occurs
// once in a batch and entries is the number of keys. Key bytes that are not
// valid UTF-8 are stored as they are (like the TEXT keys of snaps); '"',
// '\' and control characters are escaped. Runnel writes a batch's keys in
// ascending byte order (of the unescaped keys), which lets readers merge
// batches instead of sorting them; a batch in any other order (written by
// hand or by another tool) is still read correctly. Where several rows
// exist for one (step_id, state_key, epoch), the one in the batch with the
// highest seq wins, and a batch wins over snaps. The sqlite3 tool lists
// the log with json_each:
//
//	SELECT c.step_id, e.key AS state_key, c.epoch, e.value AS ser_change_hex
//	FROM changes AS c, json_each(c.batch) AS e ORDER BY c.seq, e.id;
//
// Writing an epoch appends one batch per step (per 8192 keys), so its
// cost is encoding, not one B-tree insert per key. Compaction ([Store.Compact],
// run by the committer when no epoch waits) rewrites every row before the
// garbage-collection horizon as each key's newest row only (its entry's
// text copied as it is stored), deleted keys left out, once the rows
// there are twice what the last compaction left (and at least 65536 rows,
// 16 MiB or 1024 batches); a cleanly stopped run leaves its last epochs
// uncompacted, which a resume reads as fast.
//
// # Formats
//
// Format 1 (the first release) had no dir_id, no state_shape and no
// exec_id; format 2 had no change log (every row in snaps). This release
// reads a format 1 or 2 directory as it is (a format 1 step resumes when
// its type string matches: there is no shape to compare; values still
// decode strictly, so a renamed field fails the load, naming the step and
// key), and the first run ([Store.Begin]) upgrades every partition in
// place to format 3 in the same transaction that records the execution:
// from format 1 it adds the state_shape and exec_id columns and gives the
// directory an identity; from 1 or 2 it creates the changes table; and it
// sets format_version to 3. The rows in snaps stay where they are until a
// compaction moves them. Inspection and --recovery-plan never upgrade. A
// crash in the middle of the upgrade leaves partitions of both formats side
// by side, which open, and the next run finishes the upgrade with the same
// identity. Once upgraded, a directory is refused by older releases
// ("written by a newer runnel (format 3)"); to go back, restore a copy
// taken before. No separate upgrade command is needed.
//
// # Consistency
//
// Before a run writes anything, [Store.Check] judges whether the partitions
// describe one history that can be resumed exactly; [Open] and
// [Store.Begin] refuse the directory otherwise, and inspect and
// --recovery-plan print the same [Verdict]. It refuses:
//
//   - partitions with different dir_id values (a file of another directory),
//     or different flow ids (ErrPartitionMismatch);
//   - partitions that record the same execution differently (another
//     worker count, resume epoch or exec_id: another history, such as a
//     copy of the directory that was run on its own), and a partition that records no execution while another
//     committed epochs (a file initialised anew or restored from before the
//     first run; resuming would start over) (ErrPartitionMismatch);
//   - a resume epoch R (below) before some partition's gc_epoch: rows that
//     resuming from R needs may have been garbage-collected there, so state,
//     input and sink positions would be lost (ErrStale). This is a partition
//     restored from a copy older than the others by more than the backup
//     interval, or one that lost its -wal file;
//   - a partition whose own frontier is before its own gc_epoch, which
//     no run leaves (a partition records a horizon only once it committed
//     past it): its pages come from different moments, such as a -wal file
//     of another copy put beside it (ErrStale, "inconsistent in itself").
//
// # Semantics
//
// The resume epoch of a new execution is the minimum, over all partitions,
// of the frontier of each partition's newest execution: the minimum over
// that execution's workers, a worker without a fronts row counting as the
// execution's resume epoch, and a partition without executions counting as
// 1. The state
// of (step, key) at resume epoch R is its newest snaps row with epoch < R,
// absent if there is none or it is NULL. Rows with epoch >= R are deleted when
// the execution begins.
//
// Garbage collection keeps every row needed to resume from any epoch >= H,
// where H = committed frontier - keepEpochs (the backup interval, so that a
// copy of the directory up to that old still resumes): compaction may
// delete a row when a newer row of the same key exists before H, and a
// deleted key's rows before H. A partition records H as gc_epoch before
// anything below it is deleted: in the commit after the one that made H
// safe in every partition (recording it with that commit's own frontier
// would let a crash between two partitions' commits leave one collecting
// beyond another's frontier), in a compaction, and when a run closes the
// directory.
//
// # Migrations
//
// A run that converts a step's stored state to a new type (a registered
// state migration; [Plan.Migrated]) loads and converts every key before it
// writes anything, then [Store.Begin] keeps the step's old type in the steps
// table and records the new type T and shape H in a meta row migration:STEP
// with E = the run's resume epoch. The run writes every key of the step
// again, converted, in epoch E. The new type applies once E is committed:
// [Store.StepTypes] reports T and H for the step when the resume epoch
// (computed as above) is after E, and the steps row otherwise, since then
// the rows at or after E are the uncommitted ones a run deletes and the
// step's rows all have the old type. The next [Store.Begin] writes the
// type in force into the steps table and deletes every migration: row
// that no longer applies. A release that does not know migration: rows
// reads the old type, so that a resume whose step rows have the new type
// fails to decode, naming the step and key, rather than losing state.
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
// Only one run may use a recovery directory at a time: [Store.Lock] takes
// an flock on part-0.sqlite3 for the run, and a second run gets [ErrLocked].
// The lock guards runs on one machine (or on a file system that honours
// flock). Reading ([OpenReadOnly], inspect) takes no lock and writes nothing:
// a partition with a -wal file is read with SQLite's readonly_shm, one
// without as immutable, and one whose -wal has no -shm from a private copy.
//
// # Init
//
// [Init] builds the partitions in a hidden directory beside DIR
// (".NAME.init-*") and renames it into place, so that an interrupted init
// leaves no half-made DIR; [Open] names such leftovers. Into an existing,
// non-empty directory it moves the finished files under a marker file,
// .runnel-init, which Open reports as an interrupted init.
package recovery
