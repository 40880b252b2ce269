package stdio

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
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
// A poll returns the lines already buffered, or waits for one line: while
// standard input is an idle terminal or pipe, worker 0 waits in the read
// and runs nothing else. Input ends at end of file.
func NewSource() runnel.Source[string] { return NewReaderSource(io.NopCloser(os.Stdin)) }

// NewReaderSource is NewSource reading r (a file, a network stream). If r
// is an io.Closer, it is closed when the run ends.
func NewReaderSource(r io.Reader) runnel.Source[string] {
	return runnel.DynamicInput[string](&lineSource{r: r})
}

type lineSource struct{ r io.Reader }

func (s *lineSource) Build(_ string, worker, _ int) (runnel.SourcePartition[string], error) {
	if worker != 0 {
		return &linePart{done: true}, nil
	}
	return &linePart{r: bufio.NewReaderSize(s.r, 64<<10), c: s.r}, nil
}

type linePart struct {
	r     *bufio.Reader
	c     io.Reader
	batch []string
	done  bool
}

func (p *linePart) NextBatch() ([]string, error) {
	if p.done {
		return nil, io.EOF
	}
	p.batch = p.batch[:0]
	for len(p.batch) < maxLines {
		// Block for the first line only; then take lines while a whole one
		// is already buffered.
		if len(p.batch) > 0 {
			buf, _ := p.r.Peek(p.r.Buffered())
			if bytes.IndexByte(buf, '\n') < 0 {
				break
			}
		}
		line, err := p.r.ReadString('\n')
		if len(line) > 0 {
			line = line[:len(line)-len(trailingEOL(line))]
			p.batch = append(p.batch, line)
		}
		if errors.Is(err, io.EOF) {
			p.done = true
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if p.done && len(p.batch) == 0 {
		return nil, io.EOF
	}
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

func (p *linePart) NextAwake() time.Time { return time.Time{} }

func (p *linePart) Close() error {
	if c, ok := p.c.(io.Closer); ok {
		return c.Close()
	}
	return nil
}
