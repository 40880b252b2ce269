// Package file connects a dataflow to files of lines and CSV files, like
// Bytewax's bytewax.connectors.files: NewSource and NewDirSource read
// lines, NewCSVSource and NewCSVDirSource decode CSV records into structs
// by header name, and all of them resume from a byte offset (exactly-once
// input); NewSink and NewDirSink write lines and, with recovery, give
// exactly-once output by truncating what the last committed epoch did not
// cover.
//
// # Usage
//
//	flow := runnel.NewDataflow("upper")
//	lines := op.Input("inp", flow, file.NewSource("in.txt"))
//	upper := op.Map("upper", lines, strings.ToUpper)
//	op.Output("out", upper, file.NewSink("out.txt"))
//	runnel.Main(flow)
//
// Run it with a recovery directory (runnel recovery init db/ 1, then
// go run . -r db/ -s 5 -b 0). If the run crashes, run it again: it
// continues in.txt from the byte offset of the last committed epoch and
// cuts out.txt back to the length it had at that epoch before writing
// again, so out.txt ends up exactly as an uninterrupted run would have left
// it, line for line. If in.txt grows after a run ended, the next run reads
// only the new lines and appends their results.
//
// # Positions
//
// Every partition's position is an int64 byte offset. For a source it is
// the offset of the next unread line; for a sink it is the length of the
// file after the last written line. Both are stored in the recovery
// directory under the step id and the partition name (the file's base name
// for NewSource, NewCSVSource and NewSink, the name relative to the
// directory for NewDirSource and NewCSVDirSource, "part-I.txt" for
// NewDirSink). A CSV source's position is the offset of the next record;
// its header is read again by every run.
//
// # Durability
//
// With recovery, a sink partition flushes and fsyncs its file at every
// epoch's barrier, before it reports the file's length as its position, and
// it fsyncs the file's directory right after creating the file (a dir
// sink also fsyncs the parent of each directory it creates). So once an
// epoch is committed, its lines and the file's name survive a power loss,
// not only a crash of the process. Lines written after the last committed
// epoch may be on disk, partly on disk (the last one cut short) or absent;
// the next run cuts the file back to the committed length. With or
// without recovery, the file is fsynced again when the run ends: a nil
// error from the run means every line, and the file's name, was fsynced. A failed flush, fsync or directory sync stops the run with an
// error naming the file.
//
// # Bad input
//
// Every error names the file, and for a read, the byte offset of the line
// or record that failed: a missing file or directory (before the first
// item), a line over MaxLineLength (ErrLineTooLong), a malformed CSV
// record or field, a file shorter than its recovered position
// (ErrPastEnd). Nothing is skipped: the run stops, and the committed
// position still points at the line that failed, so a run after the file
// is fixed continues there.
//
// # Files shared by processes
//
// A partition is opened by exactly one worker of the run, but every process
// lists the partitions itself: in a run of several processes, every process
// must see the same files (a shared volume), as with Bytewax's file
// connectors.
package file
