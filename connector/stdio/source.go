package stdio

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/runnel-dev/runnel"
)

// maxLines is the most lines one poll returns.
const maxLines = 1024

// NewSource returns a source of the lines of standard input, without their
// line endings ("\n" or "\r\n"), read on worker 0 only (the other workers'
// partitions end at once; use op.Redistribute to spread the work).
//
// It is not resumable: standard input cannot be rewound, so the source
// keeps no position, and a resumed run reads standard input from wherever
// the new process finds it. Lines the crashed run had read but whose epoch
// was not committed are lost to the flow's state, and nothing prevents
// feeding a resumed run input it already processed. For input that must
// survive a crash exactly once, write it to a file and read it with
// connector/file (whose position is a byte offset), or use Kafka.
//
// A goroutine reads ahead (at most 64Ki lines) so that a poll never waits:
// while standard input is idle, epochs still close, other workers' items
// are still handled and a SIGTERM still stops the run at an epoch boundary.
// Input ends at end of file. A read that is still waiting when the run ends
// is abandoned (standard input cannot be interrupted); it ends with the
// process.
//
// Options: MaxLineLength.
func NewSource(opts ...SourceOpt) runnel.Source[string] {
	return newReaderSource(io.NopCloser(os.Stdin), "standard input", opts)
}

// NewReaderSource is NewSource reading r (a file, a network stream). If r
// is an io.Closer, it is closed when the run ends, which also ends a read
// that is waiting. Like NewSource, it keeps no position.
func NewReaderSource(r io.Reader, opts ...SourceOpt) runnel.Source[string] {
	return newReaderSource(r, "the input", opts)
}

func newReaderSource(r io.Reader, name string, opts []SourceOpt) runnel.Source[string] {
	s := &lineSource{r: r, name: name}
	for _, o := range opts {
		if o != nil {
			o.apply(s)
		}
	}
	return runnel.DynamicInput[string](s)
}

// SourceOpt configures NewSource and NewReaderSource. The interface is
// sealed; options are made by this package's functions.
type SourceOpt interface{ apply(*lineSource) }

type sourceOpt func(*lineSource)

func (o sourceOpt) apply(s *lineSource) { o(s) }

// ErrLineTooLong is wrapped by the error that stops a run when a line is
// longer than MaxLineLength allows; the error names the input and the
// line's byte offset.
var ErrLineTooLong = errors.New("line too long")

// MaxLineLength limits a line to n bytes, not counting its line ending.
// A longer line stops the run with an error wrapping ErrLineTooLong that
// names the input and the line's byte offset, before the rest of the line
// is read into memory. Without it, lines of any length are read whole. n
// below 1 fails the run before it starts.
func MaxLineLength(n int) SourceOpt {
	return sourceOpt(func(s *lineSource) { s.maxLine, s.maxSet = n, true })
}

// readAhead is how many lines the reading goroutine holds before it waits
// for the flow to take them.
const readAhead = 64 << 10

type lineSource struct {
	r       io.Reader
	name    string // for errors: "standard input"
	maxLine int
	maxSet  bool
}

func (s *lineSource) Build(bc runnel.BuildContext) (runnel.SourcePartition[string], error) {
	if s.maxSet && s.maxLine < 1 {
		return nil, fmt.Errorf("stdio: maximum line length %d must be at least 1", s.maxLine)
	}
	if bc.Worker != 0 {
		return &linePart{err: io.EOF}, nil
	}
	p := &linePart{c: s.r, name: s.name, maxLine: s.maxLine}
	p.cond = sync.NewCond(&p.mu)
	go p.read(bufio.NewReaderSize(s.r, 64<<10))
	return p, nil
}

// linePart hands the lines its reading goroutine has gathered to the
// worker, a batch at a time.
type linePart struct {
	mu     sync.Mutex
	cond   *sync.Cond // the reader waits here while readAhead lines are held
	ready  []string
	err    error // io.EOF at the end, or the read error
	closed bool
	batch  []string
	c      io.Reader

	// Used by the reading goroutine only.
	name    string
	maxLine int   // 0: no limit
	off     int64 // offset of the next line
	long    []byte
}

// readLine reads one line with its line ending, stopping early with
// ErrLineTooLong once it is certainly too long.
func (p *linePart) readLine(r *bufio.Reader) (string, error) {
	b, err := r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		p.long = append(p.long[:0], b...)
		for err == bufio.ErrBufferFull {
			if p.maxLine > 0 && len(p.long) > p.maxLine+1 {
				return "", p.tooLong()
			}
			b, err = r.ReadSlice('\n')
			p.long = append(p.long, b...)
		}
		b = p.long
	}
	if len(b) > 0 && p.maxLine > 0 && len(b)-len(trailingEOL(string(b))) > p.maxLine {
		return "", p.tooLong()
	}
	if err != nil && err != io.EOF {
		// The partial line is not emitted.
		return "", fmt.Errorf("stdio: read %s at offset %d: %w", p.name, p.off, err)
	}
	line := string(b)
	p.off += int64(len(line))
	return line, err
}

func (p *linePart) tooLong() error {
	return fmt.Errorf("stdio: read %s at offset %d: %w: longer than %d bytes", p.name, p.off, ErrLineTooLong, p.maxLine)
}

func (p *linePart) read(r *bufio.Reader) {
	for {
		line, err := p.readLine(r)
		p.mu.Lock()
		for len(p.ready) >= readAhead && !p.closed {
			p.cond.Wait()
		}
		if p.closed {
			p.mu.Unlock()
			return
		}
		if len(line) > 0 {
			p.ready = append(p.ready, line[:len(line)-len(trailingEOL(line))])
		}
		if err != nil {
			p.err = err
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
	}
}

func (p *linePart) NextBatch() ([]string, error) {
	if p.cond == nil {
		return nil, p.err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.ready) == 0 {
		if p.err != nil {
			return nil, p.err
		}
		return nil, nil
	}
	n := min(len(p.ready), maxLines)
	p.batch = append(p.batch[:0], p.ready[:n]...)
	rest := copy(p.ready, p.ready[n:])
	clear(p.ready[rest:])
	p.ready = p.ready[:rest]
	p.cond.Signal()
	return p.batch, nil
}

func trailingEOL(line string) string {
	switch {
	case len(line) >= 2 && line[len(line)-2:] == "\r\n":
		return "\r\n"
	case line[len(line)-1] == '\n':
		return "\n"
	}
	return ""
}

// NextAwake is always "at once": after an empty poll the engine waits its
// short cool-down before polling again.
func (p *linePart) NextAwake() time.Time { return time.Time{} }

func (p *linePart) Close() error {
	if p.cond == nil {
		return nil
	}
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	p.mu.Unlock()
	if c, ok := p.c.(io.Closer); ok {
		return c.Close()
	}
	return nil
}
