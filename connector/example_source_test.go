package connector_test

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
)

// logSource reads named in-memory logs, one partition per log. A real
// source would read files, a message queue or a database table the same way.
type logSource struct {
	logs map[string][]string
}

// logPos is a partition's position: the index of the next entry to read. It
// is stored in the recovery directory, so it must be encodable (exported
// fields; no funcs or channels). Runnel checks it before the run starts.
type logPos struct {
	Next int
}

// ListParts names the partitions. Every worker must see the same list;
// Runnel spreads them over the workers.
func (s *logSource) ListParts(context.Context) ([]string, error) {
	var names []string
	for name := range s.logs {
		names = append(names, name)
	}
	slices.Sort(names)
	return names, nil
}

// BuildPart opens one partition on the worker that owns it. resume is the
// position of the last committed epoch, or nil on a fresh start.
func (s *logSource) BuildPart(_ runnel.BuildContext, part string, resume *logPos) (runnel.StatefulSourcePartition[string, logPos], error) {
	entries, ok := s.logs[part]
	if !ok {
		return nil, fmt.Errorf("no log %q", part)
	}
	p := &logPart{entries: entries}
	if resume != nil {
		if resume.Next > len(entries) {
			// Never resume silently at the wrong place.
			return nil, fmt.Errorf("log %q: recovered position %d is past its end (%d)", part, resume.Next, len(entries))
		}
		p.pos = *resume
	}
	return p, nil
}

type logPart struct {
	entries []string
	pos     logPos
}

// NextBatch returns the next entries, two at a time, and io.EOF at the end.
// It must not block: return an empty batch if nothing is ready, and say in
// NextAwake when to ask again.
func (p *logPart) NextBatch() ([]string, error) {
	if p.pos.Next == len(p.entries) {
		return nil, io.EOF
	}
	end := min(p.pos.Next+2, len(p.entries))
	batch := p.entries[p.pos.Next:end]
	p.pos.Next = end
	return batch, nil
}

// NextAwake is the zero time: poll again at once.
func (p *logPart) NextAwake() time.Time { return time.Time{} }

// Snapshot is the position after the last entry returned. Runnel calls it
// at the end of every epoch and stores it with the epoch.
func (p *logPart) Snapshot() (logPos, error) { return p.pos, nil }

// Close releases what the partition holds (files, connections).
func (p *logPart) Close() error { return nil }

// A partitioned source of your own: wrap it with runnel.PartitionedInput.
func Example_partitionedSource() {
	src := &logSource{logs: map[string][]string{
		"app": {"start", "request", "stop"},
		"db":  {"open", "query"},
	}}
	flow := runnel.NewDataflow("logs")
	entries := op.Input("inp", flow, runnel.PartitionedInput(src))
	sink := runneltest.NewSink[string]()
	op.Output("out", entries, sink)
	if err := runneltest.Run(flow, 2); err != nil {
		fmt.Println(err)
	}
	got := sink.Items()
	slices.Sort(got) // the two logs are read by two workers at once
	fmt.Println(got)
	// Output:
	// [open query request start stop]
}
