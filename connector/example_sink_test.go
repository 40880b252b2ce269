package connector_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
)

// epochFileSink writes each worker's lines of an epoch to a pending file
// and makes it visible, by renaming it into the output directory, only once
// the epoch is durable: a two-phase commit on the file system, like Flink's
// FileSink. Readers look only at the output directory.
type epochFileSink struct {
	dir string // holds pending/ and out/
}

// pendingFiles is what a worker stores with each snapshot: the files it
// has flushed and not yet seen committed. It is stored in the recovery
// directory, so it must be encodable (exported fields).
type pendingFiles struct {
	Worker int
	Files  []string // base names in pending/, oldest first
}

// Build finishes the files named by the last durable snapshot (their epoch
// is committed), then aborts this worker's other pending files: they
// belong to epochs the resumed run replays.
func (s epochFileSink) Build(bc runnel.BuildContext, resume []pendingFiles) (runnel.TwoPhaseSinkPartition[string, pendingFiles], error) {
	worker := bc.Worker
	for _, dir := range []string{"pending", "out"} {
		if err := os.MkdirAll(filepath.Join(s.dir, dir), 0o755); err != nil {
			return nil, err
		}
	}
	owned := map[int]bool{worker: true}
	for _, st := range resume {
		owned[st.Worker] = true
		for _, f := range st.Files {
			if err := s.publish(f); err != nil {
				return nil, err
			}
		}
	}
	left, err := os.ReadDir(filepath.Join(s.dir, "pending"))
	if err != nil {
		return nil, err
	}
	for _, e := range left {
		var w int
		var epoch uint64
		if _, err := fmt.Sscanf(e.Name(), "w%d-e%d.txt", &w, &epoch); err == nil && owned[w] {
			os.Remove(filepath.Join(s.dir, "pending", e.Name()))
		}
	}
	return &epochFilePart{sink: s, worker: worker}, nil
}

// publish renames a pending file into out/. Publishing twice is fine (the
// rename already happened); a file that is in neither place is lost, which
// must be loud.
func (s epochFileSink) publish(name string) error {
	err := os.Rename(filepath.Join(s.dir, "pending", name), filepath.Join(s.dir, "out", name))
	if errors.Is(err, os.ErrNotExist) {
		if _, statErr := os.Stat(filepath.Join(s.dir, "out", name)); statErr == nil {
			return nil
		}
		return fmt.Errorf("pending file %s is gone: its epoch's output is lost", name)
	}
	return err
}

type epochFilePart struct {
	sink    epochFileSink
	worker  int
	lines   []string // the open epoch's lines
	pending []string // flushed files waiting for Committed, with their epochs
	epochs  []runnel.Epoch
}

func (p *epochFilePart) WriteBatch(lines []string) error {
	p.lines = append(p.lines, lines...)
	return nil
}

// PreCommit writes the epoch's lines to a pending file and syncs it; the
// returned state is stored with snapshot e.
func (p *epochFilePart) PreCommit(e runnel.Epoch) (pendingFiles, error) {
	if len(p.lines) > 0 {
		name := fmt.Sprintf("w%d-e%d.txt", p.worker, e)
		f, err := os.Create(filepath.Join(p.sink.dir, "pending", name))
		if err != nil {
			return pendingFiles{}, err
		}
		_, err = f.WriteString(strings.Join(p.lines, "\n") + "\n")
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return pendingFiles{}, err
		}
		p.lines = p.lines[:0]
		p.pending = append(p.pending, name)
		p.epochs = append(p.epochs, e)
	}
	return pendingFiles{Worker: p.worker, Files: slices.Clone(p.pending)}, nil
}

// Committed publishes every file pre-committed for epochs <= e.
func (p *epochFilePart) Committed(e runnel.Epoch) error {
	for len(p.pending) > 0 && p.epochs[0] <= e {
		if err := p.sink.publish(p.pending[0]); err != nil {
			return err
		}
		p.pending, p.epochs = p.pending[1:], p.epochs[1:]
	}
	return nil
}

// Close publishes nothing: a run that ends early leaves its pending files
// to the next run, which finishes or aborts them.
func (p *epochFilePart) Close() error { return nil }

func Example_transactionalSink() {
	dir, _ := os.MkdirTemp("", "epoch-files")
	defer os.RemoveAll(dir)

	flow := runnel.NewDataflow("copy")
	words := op.Input("in", flow, runneltest.NewSource([]string{"a", "b", "c", "d"}))
	upper := op.Map("upper", words, strings.ToUpper)
	op.Output("out", upper, runnel.TwoPhaseOutput[string, pendingFiles](epochFileSink{dir: dir}))
	if err := runneltest.Run(flow, 2); err != nil {
		fmt.Println(err)
	}

	var got []string
	files, _ := filepath.Glob(filepath.Join(dir, "out", "*.txt"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		got = append(got, strings.Fields(string(b))...)
	}
	slices.Sort(got)
	fmt.Println(got)
	// Output:
	// [A B C D]
}
