package recovery

import "errors"

// EXTERNAL: returned to callers; test with errors.Is. Every error that wraps
// one of these names the directory, partition file or step it concerns.

// ErrNotInitialized is returned by [Open] and [Inspect] when the directory
// does not exist or holds no partition files. Recovery data is never created
// implicitly, so that a typo in -r cannot silently start a flow from scratch.
var ErrNotInitialized = errors.New("recovery directory not initialized")

// ErrAlreadyInitialized is returned by [Init] when the directory already holds
// partition files; re-initializing would throw away recovery data.
var ErrAlreadyInitialized = errors.New("recovery directory already initialized")

// ErrPartitionMismatch is returned by [Open] when the partition files do not
// form one complete set: a file is missing, two files disagree on the
// partition count, an index is out of range, a stray file is named like a
// partition, or the partitions belong to different recovery directories
// (each records the identity Init gave its directory), to different
// dataflows, or to different histories of executions.
var ErrPartitionMismatch = errors.New("recovery partitions do not match")

// ErrCorrupt is returned by [Open] when a partition file is not a readable
// Runnel partition: not SQLite, truncated, or missing tables or metadata.
var ErrCorrupt = errors.New("recovery partition corrupt")

// ErrVersion is returned by [Open] when a partition was written in a format
// or with a codec that this release does not read, typically by a newer
// Runnel.
var ErrVersion = errors.New("recovery format not supported")

// ErrFlowMismatch is returned by [Store.Begin] when the recovery data belongs
// to a dataflow with another id.
var ErrFlowMismatch = errors.New("recovery data belongs to another dataflow")

// ErrStateMismatch is wrapped by [Plan.Err] (and so returned by
// [Store.Begin]) when stored state belongs to steps that are gone from the
// dataflow or whose state type changed. State is never dropped silently; the
// user passes --drop-state STEP to discard it on purpose.
var ErrStateMismatch = errors.New("stored state does not match the dataflow")

// ErrUnknownStep is wrapped by [Plan.Err] when a step named to be dropped has
// no stored state, which is most likely a typo.
var ErrUnknownStep = errors.New("no stored state for step")

// ErrClosed is returned by every [Store] method called after [Store.Close].
var ErrClosed = errors.New("recovery store closed")

// ErrNotBegun is returned by [Store.WriteEpoch] and [Store.Commit] before a
// successful [Store.Begin]: without an execution there is no resume epoch to
// write after and no worker set to commit for.
var ErrNotBegun = errors.New("recovery execution not begun")

// ErrLocked is returned by [Store.Lock] when another run (in this or another
// process on the same machine) holds the recovery directory.
var ErrLocked = errors.New("recovery directory is in use by another run")

// ErrStale is returned by [Open] and [Store.Begin] (and reported by
// [Store.Check]) when a partition is behind the others by more than they
// kept: resuming from its older epoch needs rows the others have already
// garbage-collected. It happens when one partition is restored from an older
// copy, when the partitions were copied further apart than the backup
// interval (-b), or when a partition lost its -wal file. The fix is to
// restore every partition from one backup.
var ErrStale = errors.New("recovery partitions are out of step")

// ErrAccess is returned when a recovery directory or partition cannot be
// read or written for lack of permission, or because it is on a read-only
// file system. It is not corruption: the fix is the permissions or the
// mount, not a backup.
var ErrAccess = errors.New("recovery directory not accessible")

// ErrReadOnly is returned by the methods that write of a [Store] opened with
// [OpenReadOnly].
var ErrReadOnly = errors.New("recovery store opened read-only")
