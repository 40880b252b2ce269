// Package stdio connects a dataflow to standard input and output.
package stdio

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/runnel-dev/runnel"
)

// NewSink returns a sink that prints each item on its own line of standard
// output, as fmt.Println would (a runnel.KV prints as ('key', value)), like
// Bytewax's StdOutSink. Lines from different workers never interleave;
// each batch is written before the next epoch can commit, so a graceful
// stop prints everything up to the stop and nothing after it.
func NewSink[T any]() runnel.Sink[T] { return NewWriterSink[T](os.Stdout) }

// NewWriterSink is NewSink writing to w instead of standard output.
func NewWriterSink[T any](w io.Writer) runnel.Sink[T] {
	return runnel.DynamicOutput[T](&writerSink[T]{shared: &sharedWriter{w: bufio.NewWriter(w)}})
}

// sharedWriter is the one buffered writer that every worker's partition
// writes through, a batch at a time.
type sharedWriter struct {
	mu sync.Mutex
	w  *bufio.Writer
}

type writerSink[T any] struct{ shared *sharedWriter }

func (s *writerSink[T]) Build(runnel.BuildContext) (runnel.SinkPartition[T], error) {
	return &writerPart[T]{shared: s.shared}, nil
}

type writerPart[T any] struct {
	shared *sharedWriter
	line   []byte
}

func (p *writerPart[T]) WriteBatch(items []T) error {
	p.line = p.line[:0]
	for _, x := range items {
		p.line = fmt.Append(p.line, x)
		p.line = append(p.line, '\n')
	}
	p.shared.mu.Lock()
	defer p.shared.mu.Unlock()
	if _, err := p.shared.w.Write(p.line); err != nil {
		return err
	}
	return p.shared.w.Flush()
}

func (p *writerPart[T]) Close() error {
	p.shared.mu.Lock()
	defer p.shared.mu.Unlock()
	return p.shared.w.Flush()
}
