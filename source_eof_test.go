package runnel_test

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
)

// eofPart returns its batches in turn, the last one together with an end
// error (io.EOF, or an error wrapping it), as io.Reader allows. It counts
// the calls made after that.
type eofPart struct {
	batches [][]int
	next    int
	wrap    bool
	ended   bool
	late    *atomic.Int32
}

func (p *eofPart) NextBatch() ([]int, error) {
	if p.ended {
		p.late.Add(1)
	}
	if p.next >= len(p.batches) {
		p.ended = true
		return nil, io.EOF
	}
	b := p.batches[p.next]
	p.next++
	if p.next < len(p.batches) {
		return b, nil
	}
	p.ended = true
	if p.wrap {
		return b, fmt.Errorf("no more lines: %w", io.EOF)
	}
	return b, io.EOF
}
func (p *eofPart) NextAwake() time.Time   { return time.Time{} }
func (p *eofPart) Snapshot() (int, error) { return p.next, nil }
func (p *eofPart) Close() error           { return nil }

// eofSource has three partitions; partition i holds 100i+1 … 100i+5 in
// batches of two, the last batch coming with the end.
type eofSource struct {
	wrap bool
	late atomic.Int32
}

func (s *eofSource) batches(i int) [][]int {
	b := 100*i + 1
	return [][]int{{b, b + 1}, {b + 2, b + 3}, {b + 4}}
}

func (s *eofSource) ListParts(context.Context) ([]string, error) { return []string{"a", "b", "c"}, nil }

func (s *eofSource) BuildPart(_ runnel.BuildContext, part string, resume *int) (runnel.StatefulSourcePartition[int, int], error) {
	i := int(part[0] - 'a')
	p := &eofPart{batches: s.batches(i), wrap: s.wrap, late: &s.late}
	if resume != nil {
		p.next = *resume
	}
	return p, nil
}

func (s *eofSource) Build(bc runnel.BuildContext) (runnel.SourcePartition[int], error) {
	return &eofPart{batches: s.batches(bc.Worker), wrap: s.wrap, late: &s.late}, nil
}

func (s *eofSource) want(parts int) []int {
	var out []int
	for i := range parts {
		for _, b := range s.batches(i) {
			out = append(out, b...)
		}
	}
	return out
}

func runEOFFlow(t *testing.T, src runnel.Source[int], cfg runnel.Config) []int {
	t.Helper()
	flow := runnel.NewDataflow("eof")
	sink := runneltest.NewSink[int]()
	op.Output("out", op.Input("inp", flow, src), sink)
	if err := run(t, flow, cfg); err != nil {
		t.Fatal(err)
	}
	return slices.Sorted(slices.Values(sink.Items()))
}

// TestItemsWithEOFAreDelivered: items that NextBatch returns together with
// io.EOF (or an error wrapping it) are delivered, then the partition ends
// and is not read again, for partitioned and dynamic sources on one and
// several workers. A resumed partitioned source starts after them.
func TestItemsWithEOFAreDelivered(t *testing.T) {
	for _, wrap := range []bool{false, true} {
		for _, workers := range []int{1, 3} {
			t.Run(fmt.Sprintf("wrap=%v/w%d", wrap, workers), func(t *testing.T) {
				t.Run("partitioned", func(t *testing.T) {
					src := &eofSource{wrap: wrap}
					dir := initDir(t, 1)
					cfg := runneltest.Config(workers, time.Hour, dir)
					if diff := cmp.Diff(src.want(3), runEOFFlow(t, runnel.PartitionedInput[int, int](src), cfg)); diff != "" {
						t.Errorf("items (-want +got):\n%s", diff)
					}
					if got := runEOFFlow(t, runnel.PartitionedInput[int, int](src), cfg); len(got) != 0 {
						t.Errorf("the resumed run read %v again", got)
					}
					if n := src.late.Load(); n != 0 {
						t.Errorf("NextBatch was called %d times after it returned the end", n)
					}
				})
				t.Run("dynamic", func(t *testing.T) {
					src := &eofSource{wrap: wrap}
					got := runEOFFlow(t, runnel.DynamicInput[int](src), runneltest.Config(workers, time.Hour, ""))
					if diff := cmp.Diff(src.want(workers), got); diff != "" {
						t.Errorf("items (-want +got):\n%s", diff)
					}
					if n := src.late.Load(); n != 0 {
						t.Errorf("NextBatch was called %d times after it returned the end", n)
					}
				})
			})
		}
	}
}
