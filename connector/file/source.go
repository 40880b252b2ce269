package file

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/engine"
)

// DefaultBatchSize is how many lines a source partition returns per poll
// unless BatchSize says otherwise (as in Bytewax's FileSource).
const DefaultBatchSize = 1000

// readBuffer is the size of a partition's read buffer. Longer lines are
// read whole, in several pieces.
const readBuffer = 64 << 10

// SourceOpt configures NewSource, NewDirSource and the CSV sources.
// Options are made by this package's functions (BatchSize, MaxLineLength);
// the interface is sealed.
type SourceOpt interface {
	apply(*sourceConfig)
	applyCSV(*csvConfig) // every SourceOpt is a CSVOpt too
}

type sourceConfig struct {
	batch   int
	maxLine int // 0: no limit
	maxSet  bool
}

type sourceOpt func(*sourceConfig)

func (o sourceOpt) apply(c *sourceConfig) { o(c) }

func (o sourceOpt) applyCSV(c *csvConfig) { o(&c.sourceConfig) }

// BatchSize sets the most lines a partition returns per poll, overriding
// the default DefaultBatchSize (1000). A batch is also cut short at the end
// of the file. n below 1 makes the run fail before it starts.
func BatchSize(n int) SourceOpt { return sourceOpt(func(c *sourceConfig) { c.batch = n }) }

// MaxLineLength limits a line to n bytes, not counting its line ending
// (for the CSV sources: a record to n bytes, with its quotes and
// separators). A longer line stops the run with an error wrapping
// ErrLineTooLong that names the file and the line's byte offset; the
// position stays at the start of that line, so the run can be resumed
// after the file is fixed (or with a higher limit). Without the option,
// lines of any length are read whole. n below 1 makes the run fail before
// it starts.
func MaxLineLength(n int) SourceOpt {
	return sourceOpt(func(c *sourceConfig) { c.maxLine = n; c.maxSet = true })
}

func newSourceConfig(opts []SourceOpt) sourceConfig {
	c := sourceConfig{batch: DefaultBatchSize}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	return c
}

func (c sourceConfig) validate() error {
	if c.batch < 1 {
		return fmt.Errorf("file: batch size %d must be at least 1", c.batch)
	}
	if c.maxSet && c.maxLine < 1 {
		return fmt.Errorf("file: maximum line length %d must be at least 1", c.maxLine)
	}
	return nil
}

// NewSource reads the lines of the file at path, in order, in one partition
// named by the file's base name (filepath.Base(path)), like Bytewax's
// FileSource.
//
// Each item is one line without its line ending ("\n" or "\r\n"; a lone
// "\r" inside a line is kept). Empty lines are items too. A last line
// without a newline at the end of the file is returned as well, and the
// input ends there: the source does not wait for the file to grow. Lines of
// any length are read whole unless MaxLineLength limits them.
//
// The position is the byte offset of the next unread line. A resumed run
// opens the file and seeks there, so it neither re-reads nor skips a line;
// a file that grew between runs is continued with the lines appended to it
// (append whole lines: text appended to a last line that had no newline is
// read as a new line). A file shorter than the recovered position fails the
// run with ErrPastEnd. A missing or unreadable file fails the run before
// the first item, with an error naming the path.
//
// The partition name is part of the recovery data: a file renamed between
// runs is refused (its old name's position is not among the partitions).
// The file is only read, never modified; a nil error from the run means
// every line up to the end of the file, as it was when the partition reached
// it, was emitted.
func NewSource(path string, opts ...SourceOpt) runnel.Source[string] {
	return runnel.PartitionedInput[string, int64](&fileSource{
		path: path,
		part: filepath.Base(path),
		cfg:  newSourceConfig(opts),
	})
}

type fileSource struct {
	path string
	part string
	cfg  sourceConfig
}

func (s *fileSource) ListParts(context.Context) ([]string, error) { return []string{s.part}, nil }

func (s *fileSource) BuildPart(_ runnel.BuildContext, part string, resume *int64) (runnel.StatefulSourcePartition[string, int64], error) {
	if part != s.part {
		return nil, fmt.Errorf("file: no partition %q in source %s", part, s.path)
	}
	return openPart(s.path, s.cfg, resume)
}

// NewDirSource reads the files in dir whose names match glob (as
// filepath.Glob matches filepath.Join(dir, glob); directories are skipped),
// one partition per file, each read like NewSource, like Bytewax's
// DirSource. As in Bytewax (Python's Path.glob), a "**" path element
// matches any number of directories, itself included: "**/*.log" reads
// every .log file below dir, at any depth. Partitions are named by the file's path relative to dir
// (with forward slashes) and spread over the workers by the engine; lines
// of one file keep their order, lines of different files interleave.
//
// The directory is listed once per run, before anything is read, and
// every worker of the run works from that listing: a file added while the
// flow runs is read by the next run. A file that is no longer
// listed but has a recovered position makes the run refuse to resume. A
// missing dir, a dir that is not a directory or a malformed glob fails the
// run before the first item, naming the path; a dir with no matching file
// is an input with no partitions, which ends at once.
func NewDirSource(dir, glob string, opts ...SourceOpt) runnel.Source[string] {
	return runnel.PartitionedInput[string, int64](&dirSource{
		dirLister: dirLister{dir: dir, glob: glob},
		cfg:       newSourceConfig(opts),
	})
}

type dirSource struct {
	dirLister
	cfg sourceConfig
}

func (s *dirSource) BuildPart(_ runnel.BuildContext, part string, resume *int64) (runnel.StatefulSourcePartition[string, int64], error) {
	path, err := s.path(part)
	if err != nil {
		return nil, err
	}
	return openPart(path, s.cfg, resume)
}

// dirLister lists the files of a directory source. The engine lists once
// per run and hands that listing to every worker; BuildPart checks a
// partition against the latest listing.
type dirLister struct {
	dir, glob string

	mu    sync.Mutex
	parts []string // the latest listing
}

func (s *dirLister) list() ([]string, error) {
	pattern := filepath.Join(s.dir, s.glob)
	fi, err := os.Stat(s.dir)
	if err != nil {
		return nil, fmt.Errorf("file: list %s: %w", pattern, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("file: list %s: %s is not a directory", pattern, s.dir)
	}
	matches, err := s.match()
	if err != nil {
		return nil, fmt.Errorf("file: list %s: %w", pattern, err)
	}
	var parts []string
	for _, m := range matches {
		fi, err := os.Stat(m)
		if err != nil || !fi.Mode().IsRegular() {
			continue // gone since the glob, or not a file
		}
		rel, err := filepath.Rel(s.dir, m)
		if err != nil {
			return nil, fmt.Errorf("file: list %s: %w", pattern, err)
		}
		parts = append(parts, filepath.ToSlash(rel))
	}
	slices.Sort(parts)
	return parts, nil
}

// match lists the paths that match, with filepath.Glob, or by walking the
// directory when the pattern has a "**" element.
func (s *dirLister) match() ([]string, error) {
	elems := strings.Split(filepath.ToSlash(s.glob), "/")
	if !slices.Contains(elems, "**") {
		return filepath.Glob(filepath.Join(s.dir, s.glob))
	}
	for _, e := range elems {
		if _, err := path.Match(e, ""); err != nil {
			return nil, filepath.ErrBadPattern
		}
	}
	var matches []string
	err := filepath.WalkDir(s.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(s.dir, p)
		if err != nil {
			return err
		}
		if matchElems(elems, strings.Split(filepath.ToSlash(rel), "/")) {
			matches = append(matches, p)
		}
		return nil
	})
	return matches, err
}

// matchElems matches path elements against pattern elements, where "**"
// matches any number of elements.
func matchElems(pattern, name []string) bool {
	for len(pattern) > 0 {
		if pattern[0] == "**" {
			for i := 0; i <= len(name); i++ {
				if matchElems(pattern[1:], name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, _ := path.Match(pattern[0], name[0]); !ok {
			return false
		}
		pattern, name = pattern[1:], name[1:]
	}
	return len(name) == 0
}

// ListParts lists the matching files; a listing error stops the run.
func (s *dirLister) ListParts(context.Context) ([]string, error) {
	parts, err := s.list()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.parts = parts
	s.mu.Unlock()
	return parts, nil
}

// path is the file of a listed partition.
func (s *dirLister) path(part string) (string, error) {
	s.mu.Lock()
	_, ok := slices.BinarySearch(s.parts, part)
	s.mu.Unlock()
	if !ok {
		return "", fmt.Errorf("file: no partition %q in %s", part, filepath.Join(s.dir, s.glob))
	}
	return filepath.Join(s.dir, filepath.FromSlash(part)), nil
}

// openPart opens path for reading at the resume offset (0 without one).
func openPart(path string, cfg sourceConfig, resume *int64) (*sourcePart, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("file: open source: %w", err) // *PathError names the path
	}
	p := &sourcePart{path: path, f: f, batchSize: cfg.batch, maxLine: cfg.maxLine}
	if resume != nil && *resume != 0 {
		if err := p.seek(*resume); err != nil {
			f.Close()
			return nil, err
		}
	}
	p.r = bufio.NewReaderSize(f, readBuffer)
	return p, nil
}

// sourcePart reads one file. It is used by one worker only.
type sourcePart struct {
	path      string
	f         *os.File
	r         *bufio.Reader
	batchSize int
	maxLine   int      // 0: no limit
	pos       int64    // offset of the next unread line
	batch     []string // lent to the engine until the next call
	long      []byte   // the pieces of a line longer than the buffer
	eof       bool
}

func (p *sourcePart) seek(off int64) error {
	if off < 0 {
		return fmt.Errorf("file: source %s: recovered position %d is negative", p.path, off)
	}
	fi, err := p.f.Stat()
	if err != nil {
		return fmt.Errorf("file: source: %w", err)
	}
	if off > fi.Size() {
		return engine.StaleState(fmt.Errorf("file: source %s: %w (position %d, size %d)", p.path, ErrPastEnd, off, fi.Size()))
	}
	if _, err := p.f.Seek(off, io.SeekStart); err != nil {
		return fmt.Errorf("file: source: %w", err)
	}
	p.pos = off
	return nil
}

// NextBatch returns up to batchSize lines; io.EOF once the file is read.
func (p *sourcePart) NextBatch() ([]string, error) {
	if p.eof {
		return nil, io.EOF
	}
	clear(p.batch)
	p.batch = p.batch[:0]
	for len(p.batch) < p.batchSize {
		line, n, err := p.readLine()
		if n > 0 {
			p.batch = append(p.batch, line)
			p.pos += int64(n)
		}
		if err == io.EOF {
			p.eof = true
			if len(p.batch) == 0 {
				return nil, io.EOF
			}
			break
		}
		if err != nil {
			return nil, fmt.Errorf("file: read %s at offset %d: %w", p.path, p.pos, err)
		}
	}
	return p.batch, nil
}

// readLine reads one line and returns it without its line ending, with the
// number of bytes it took in the file. The line is the only allocation:
// short lines are converted straight from the read buffer, long ones are
// gathered in a reused scratch slice first.
func (p *sourcePart) readLine() (string, int, error) {
	b, err := p.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		p.long = append(p.long[:0], b...)
		for err == bufio.ErrBufferFull {
			if p.maxLine > 0 && len(p.long) > p.maxLine+1 {
				// Too long whatever follows: stop before reading the
				// rest of it into memory.
				return "", 0, p.tooLong()
			}
			b, err = p.r.ReadSlice('\n')
			p.long = append(p.long, b...)
		}
		b = p.long
	}
	n := len(b)
	if err != nil && err != io.EOF {
		// Nothing is returned for a failed read: the position stays at
		// the start of the line, so a resumed run reads it again.
		return "", 0, err
	}
	line := trimEOL(b)
	if p.maxLine > 0 && len(line) > p.maxLine {
		return "", 0, p.tooLong()
	}
	return string(line), n, err
}

func (p *sourcePart) tooLong() error {
	return fmt.Errorf("%w: longer than %d bytes", ErrLineTooLong, p.maxLine)
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

// NextAwake is always "at once": a file is read as fast as the flow takes
// its lines.
// Progress is the offset of the next unread line and the file's current
// size, for --progress and the runnel_source_remaining metric.
func (p *sourcePart) Progress() (done, total int64) {
	total = p.pos
	if p.f == nil {
		return p.pos, total
	}
	if fi, err := p.f.Stat(); err == nil {
		total = max(fi.Size(), p.pos)
	}
	return p.pos, total
}

func (p *sourcePart) NextAwake() time.Time { return time.Time{} }

// Snapshot is the offset of the next unread line.
func (p *sourcePart) Snapshot() (int64, error) { return p.pos, nil }

func (p *sourcePart) Close() error {
	if err := p.f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("file: close source: %w", err)
	}
	return nil
}
