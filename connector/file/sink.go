package file

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/cespare/xxhash/v2"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/engine"
)

// writeBuffer is the size of a sink partition's write buffer.
const writeBuffer = 64 << 10

// NewSink writes each item as one line (the item, then "\n") to the file at
// path, in one partition named by the file's base name, like Bytewax's
// FileSink. Every item reaches the worker that owns the partition, so lines
// keep the order in which that worker receives them (the order of the
// input, when it comes from one partition and only stateless steps).
//
// Without a recovered position (a run without recovery, or the first run)
// the file is created or truncated when the first line is written or the
// first epoch ends, not when the run starts, so that a run refused while it
// starts (state that does not decode, a source that cannot open) leaves an
// existing file alone and creates none; its directory must exist (checked
// when the run starts). (So a run without recovery that writes no line at
// all neither creates nor truncates the file.) Writes are
// buffered. With recovery, at every epoch's barrier the partition flushes
// and fsyncs the file before it reports its position, the file's length, so
// that a committed epoch's lines are on disk. A resumed run opens the file
// and truncates it to the position of the last committed epoch before
// appending: the lines written after that epoch by the crashed run are cut
// off and written again, so the file ends exactly as an uninterrupted run
// would have left it (exactly-once, given a deterministic flow). A file
// shorter than the recovered position fails the run with ErrPastEnd.
//
// After a crash, and until the next run truncates it, the file may hold
// lines past the last committed epoch, and, after a power loss, the last
// of them may be cut short. A nil error from the run means every line was
// flushed and fsynced, and so was the file's directory entry: the
// directory is fsynced right after the file is created (and after a dir
// sink's directory is created, its parent), before any epoch that wrote to
// the file can commit, so a committed epoch's lines survive a power loss
// and not only a crash of the process. If flushing or syncing fails at a barrier, the run
// stops with an error naming the path before the epoch commits. An item that
// contains "\n" makes more than one line.
func NewSink(path string) runnel.Sink[string] { return NewSinkFunc(path, identity) }

// NewSinkFunc is NewSink for items of any type: format(item) is written as
// the line (without its "\n"). A nil format writes fmt.Sprint(item).
func NewSinkFunc[T any](path string, format func(T) string) runnel.Sink[T] {
	format = orSprint(format)
	return runnel.PartitionedOutput[T, int64](&fileSink[T]{
		paths:  []string{path},
		names:  []string{filepath.Base(path)},
		format: format,
	})
}

// NewDirSink writes items as lines to parts files in dir, "part-0.txt" …
// "part-{parts-1}.txt", one partition each, like Bytewax's DirSink. dir is
// created if it does not exist. Each file is written like NewSink's, with
// its own position, so each gives exactly-once output after a resume.
//
// partFor(item) chooses the file: the engine takes its result modulo parts
// (a negative result counts from the end), so it may return any int, a
// hash for example, and "part-I.txt" receives the items with
// partFor(item) mod parts == I. Partitions are spread over the workers
// (partition I on worker I mod workers), and each item crosses to the
// worker that owns its file. partFor must be a pure function of the item:
// it is called on the worker that sends the item and again on the one that
// writes it. A nil partFor hashes the item's text with xxhash64, which
// spreads items evenly and stably across runs.
//
// parts must not change between runs that share recovery data (a resumed
// run with fewer parts is refused; with more, items are routed anew and the
// files no longer match an uninterrupted run's); parts below 1 fails the run
// before the first item.
func NewDirSink(dir string, parts int, partFor func(string) int) runnel.Sink[string] {
	return NewDirSinkFunc(dir, parts, partFor, identity)
}

// NewDirSinkFunc is NewDirSink for items of any type: partFor(item) picks
// the file as in NewDirSink (nil hashes format(item)), and format(item) is
// written as the line (nil writes fmt.Sprint(item)).
func NewDirSinkFunc[T any](dir string, parts int, partFor func(T) int, format func(T) string) runnel.Sink[T] {
	format = orSprint(format)
	s := &fileSink[T]{dir: dir, format: format, partFor: partFor, badParts: parts < 1}
	for i := range max(parts, 1) {
		name := "part-" + strconv.Itoa(i) + ".txt"
		s.names = append(s.names, name)
		s.paths = append(s.paths, filepath.Join(dir, name))
	}
	if partFor == nil {
		s.partFor = func(x T) int { return int(xxhash.Sum64String(format(x)) >> 1) }
	}
	return runnel.PartitionedOutput[T, int64](s)
}

func identity(s string) string { return s }

func orSprint[T any](format func(T) string) func(T) string {
	if format == nil {
		return func(x T) string { return fmt.Sprint(x) }
	}
	return format
}

type fileSink[T any] struct {
	dir      string // for a dir sink, created by BuildPart
	names    []string
	paths    []string
	format   func(T) string
	partFor  func(T) int
	badParts bool
}

func (s *fileSink[T]) ListParts(context.Context) ([]string, error) { return s.names, nil }

func (s *fileSink[T]) PartFor(x T) int {
	if s.partFor == nil {
		return 0
	}
	return s.partFor(x)
}

func (s *fileSink[T]) BuildPart(_ runnel.BuildContext, part string, resume *int64) (runnel.StatefulSinkPartition[T, int64], error) {
	if s.badParts {
		return nil, fmt.Errorf("file: dir sink %s: parts must be at least 1", s.dir)
	}
	i := -1
	for j, n := range s.names {
		if n == part {
			i = j
		}
	}
	if i < 0 {
		return nil, fmt.Errorf("file: no partition %q in sink %s", part, s.paths[0])
	}
	if s.dir != "" {
		if err := mkdirAllSynced(s.dir); err != nil {
			return nil, fmt.Errorf("file: dir sink: %w", err)
		}
	}
	w, err := openWriter(s.paths[i], resume)
	if err != nil {
		return nil, err
	}
	return &sinkPart[T]{lineWriter: w, format: s.format}, nil
}

type sinkPart[T any] struct {
	*lineWriter
	format func(T) string
}

func (p *sinkPart[T]) WriteBatch(items []T) error {
	for _, x := range items {
		if err := p.writeLine(p.format(x)); err != nil {
			return err
		}
	}
	return nil
}

// lineWriter appends lines to one file and knows its length.
type lineWriter struct {
	path    string
	pending bool // the file is yet to be created (or truncated)
	f       *os.File
	w       *bufio.Writer
	pos     int64 // the file's length once w is flushed
	synced  int64 // the length last fsynced
	err     error // the first write error; every later call returns it
}

// openWriter opens path for writing at the resume offset, truncating what
// lies past it. Without one it only checks that path's directory exists:
// the file is created or truncated by the first write or sync (see create).
func openWriter(path string, resume *int64) (*lineWriter, error) {
	if resume == nil {
		dir := filepath.Dir(path)
		if fi, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("file: create sink %s: %w", path, err)
		} else if !fi.IsDir() {
			return nil, fmt.Errorf("file: create sink %s: %s is not a directory", path, dir)
		}
		return &lineWriter{path: path, pending: true, synced: -1}, nil
	}
	off := *resume
	if off < 0 {
		return nil, fmt.Errorf("file: sink %s: recovered position %d is negative", path, off)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("file: open sink: %w", err)
	}
	fail := func(err error) (*lineWriter, error) {
		f.Close()
		return nil, err
	}
	// O_CREATE may have made the file (a resumed position of 0 whose file
	// is gone): make its name durable like create does.
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fail(fmt.Errorf("file: open sink %s: %w", path, err))
	}
	fi, err := f.Stat()
	if err != nil {
		return fail(fmt.Errorf("file: open sink: %w", err))
	}
	if fi.Size() < off {
		return fail(engine.StaleState(fmt.Errorf("file: sink %s: %w (position %d, size %d)", path, ErrPastEnd, off, fi.Size())))
	}
	if fi.Size() > off {
		if err := f.Truncate(off); err != nil {
			return fail(fmt.Errorf("file: sink: cut back to the committed position: %w", err))
		}
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return fail(fmt.Errorf("file: sink: %w", err))
	}
	return &lineWriter{path: path, f: f, w: bufio.NewWriterSize(f, writeBuffer), pos: off, synced: -1}, nil
}

// create creates or truncates the file of a writer without a recovered
// position, on its first write or sync.
func (w *lineWriter) create() error {
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		w.err = fmt.Errorf("file: create sink: %w", err) // *PathError names the path
		return w.err
	}
	if err := syncDir(filepath.Dir(w.path)); err != nil {
		f.Close()
		w.err = fmt.Errorf("file: create sink %s: %w", w.path, err)
		return w.err
	}
	w.f, w.w, w.pending, w.synced = f, bufio.NewWriterSize(f, writeBuffer), false, -1
	return nil
}

// syncDir fsyncs the directory dir, so that the names created in it survive
// a power loss (fsyncing a file makes its data durable, not its directory
// entry; pebble and etcd sync the directory the same way). A variable so
// that a test can make it fail.
var syncDir = func(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// mkdirAllSynced is os.MkdirAll that also fsyncs the parent of every
// directory it creates, so that the new directories survive a power loss.
func mkdirAllSynced(dir string) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirAllSynced(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil // another worker's partition made it first
		}
		return err
	}
	return syncDir(parent)
}

func (w *lineWriter) writeLine(s string) error {
	if w.err != nil {
		return w.err
	}
	if w.pending {
		if err := w.create(); err != nil {
			return err
		}
	}
	if _, err := w.w.WriteString(s); err != nil {
		return w.fail(err)
	}
	if err := w.w.WriteByte('\n'); err != nil {
		return w.fail(err)
	}
	w.pos += int64(len(s)) + 1
	return nil
}

func (w *lineWriter) fail(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Path == w.path {
		w.err = fmt.Errorf("file: sink: %w", err) // the *PathError names the path
	} else {
		w.err = fmt.Errorf("file: write %s: %w", w.path, err)
	}
	return w.err
}

// sync flushes the buffer and fsyncs the file, unless nothing was written
// since the last sync.
func (w *lineWriter) sync() error {
	if w.err != nil {
		return w.err
	}
	if w.pending {
		if err := w.create(); err != nil {
			return err
		}
	}
	if w.synced == w.pos {
		return nil
	}
	if err := w.w.Flush(); err != nil {
		return w.fail(err)
	}
	if err := w.f.Sync(); err != nil {
		return w.fail(err)
	}
	w.synced = w.pos
	return nil
}

// Snapshot flushes and fsyncs the file and returns its length. The engine
// calls it at each epoch's barrier, before the epoch can commit; an error
// (which names the path) stops the run, so the epoch is never committed
// with a position whose lines may be lost.
func (w *lineWriter) Snapshot() (int64, error) {
	if err := w.sync(); err != nil {
		return 0, err
	}
	return w.pos, nil
}

// Close flushes, fsyncs and closes the file.
func (w *lineWriter) Close() error {
	if w.pending {
		return w.err // never created: leave the path alone
	}
	err := w.sync()
	if cerr := w.f.Close(); cerr != nil && !errors.Is(cerr, os.ErrClosed) && err == nil {
		err = fmt.Errorf("file: close sink: %w", cerr)
	}
	return err
}
