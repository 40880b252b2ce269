package stdio

import (
	"bufio"
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
// partitions end at once; use op.Redistribute to spread the work). It is a
// dynamic source: it keeps no position, so a resumed run reads standard
// input again from where the new process finds it.
//
// A goroutine reads ahead (at most 64Ki lines) so that a poll never waits:
// while standard input is idle, epochs still close, other workers' items
// are still handled and a SIGTERM still stops the run at an epoch boundary.
// Input ends at end of file. A read that is still waiting when the run ends
// is abandoned (standard input cannot be interrupted); it ends with the
// process.
func NewSource() runnel.Source[string] { return NewReaderSource(io.NopCloser(os.Stdin)) }

// NewReaderSource is NewSource reading r (a file, a network stream). If r
// is an io.Closer, it is closed when the run ends, which also ends a read
// that is waiting.
func NewReaderSource(r io.Reader) runnel.Source[string] {
	return runnel.DynamicInput[string](&lineSource{r: r})
}

// readAhead is how many lines the reading goroutine holds before it waits
// for the flow to take them.
const readAhead = 64 << 10

type lineSource struct{ r io.Reader }

func (s *lineSource) Build(_ string, worker, _ int) (runnel.SourcePartition[string], error) {
	if worker != 0 {
		return &linePart{err: io.EOF}, nil
	}
	p := &linePart{c: s.r}
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
}

func (p *linePart) read(r *bufio.Reader) {
	for {
		line, err := r.ReadString('\n')
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
