package stdio_test

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/stdio"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/recovery"
	"github.com/runnel-dev/runnel/runneltest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type closeCounter struct {
	*strings.Reader
	closed int
}

func (c *closeCounter) Close() error { c.closed++; return nil }

func TestReaderSource(t *testing.T) {
	for _, w := range []int{1, 3} {
		in := &closeCounter{Reader: strings.NewReader("one\r\ntwo\n\nthree")}
		flow := runnel.NewDataflow("f")
		lines := op.Input("lines", flow, stdio.NewReaderSource(in))
		sink := runneltest.NewSink[string]()
		op.Output("out", lines, sink)
		if err := runneltest.Run(flow, w); err != nil {
			t.Fatal(err)
		}
		if got, want := sink.Items(), []string{"one", "two", "", "three"}; !slices.Equal(got, want) {
			t.Errorf("%d workers: got %q, want %q", w, got, want)
		}
		if in.closed != 1 {
			t.Errorf("%d workers: closed %d times, want once", w, in.closed)
		}
	}
}

func TestReaderSourceManyLines(t *testing.T) {
	var b strings.Builder
	for range 3000 {
		b.WriteString("x\n")
	}
	flow := runnel.NewDataflow("f")
	sink := runneltest.NewSink[string]()
	op.Output("out", op.Input("lines", flow, stdio.NewReaderSource(strings.NewReader(b.String()))), sink)
	if err := runneltest.Run(flow, 1); err != nil {
		t.Fatal(err)
	}
	if n := len(sink.Items()); n != 3000 {
		t.Errorf("got %d lines, want 3000", n)
	}
}

// An idle input must not hold the worker: epochs close and a graceful stop
// ends the run while nothing arrives.
func TestIdleReaderDoesNotBlock(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	flow := runnel.NewDataflow("idle")
	sink := runneltest.NewSink[string]()
	op.Output("out", op.Input("inp", flow, stdio.NewReaderSource(pr)), sink)
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- runnel.Run(context.Background(), flow, runneltest.Config(2, time.Millisecond, ""), runnel.WithStop(stop))
	}()
	if _, err := io.WriteString(pw, "one\n"); err != nil {
		t.Fatal(err)
	}
	for len(sink.Items()) == 0 {
		time.Sleep(time.Millisecond)
	}
	close(stop)
	if err := <-done; !errors.Is(err, runnel.ErrInterrupted) {
		t.Fatalf("err = %v, want a clean stop while the input is idle", err)
	}
	if got := sink.Items(); len(got) != 1 || got[0] != "one" {
		t.Errorf("got %q", got)
	}
}

func TestReaderSourceMaxLineLength(t *testing.T) {
	in := "0123456789\r\nok\n" + strings.Repeat("x", 200<<10) + "\nnever\n"
	flow := runnel.NewDataflow("f")
	sink := runneltest.NewSink[string]()
	op.Output("out", op.Input("lines", flow, stdio.NewReaderSource(strings.NewReader(in), stdio.MaxLineLength(10))), sink)
	err := runneltest.Run(flow, 2)
	if !errors.Is(err, stdio.ErrLineTooLong) || !strings.Contains(err.Error(), "the input at offset 15") || !strings.Contains(err.Error(), "f.lines") {
		t.Fatalf("err = %v, want ErrLineTooLong naming the step and offset 15", err)
	}
	if got, want := sink.Items(), []string{"0123456789", "ok"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}

	flow = runnel.NewDataflow("f")
	op.Output("out", op.Input("lines", flow, stdio.NewReaderSource(strings.NewReader(in), stdio.MaxLineLength(0))), runneltest.NewSink[string]())
	if err := runneltest.Run(flow, 1); err == nil || !strings.Contains(err.Error(), "maximum line length 0") {
		t.Fatalf("err = %v, want a bad option error", err)
	}
}

type failingReader struct{ n int }

func (r *failingReader) Read(b []byte) (int, error) {
	if r.n == 0 {
		r.n++
		return copy(b, "one\ntw"), nil
	}
	return 0, errors.New("disk on fire")
}

func TestReaderSourceReadError(t *testing.T) {
	flow := runnel.NewDataflow("f")
	sink := runneltest.NewSink[string]()
	op.Output("out", op.Input("lines", flow, stdio.NewReaderSource(&failingReader{})), sink)
	err := runneltest.Run(flow, 1)
	if err == nil || !strings.Contains(err.Error(), "the input at offset 4: disk on fire") {
		t.Fatalf("err = %v, want the read error at offset 4, the start of the line it cut", err)
	}
	if got := sink.Items(); !slices.Equal(got, []string{"one"}) {
		t.Errorf("got %q, want only the whole line", got)
	}
}

// TestReaderSourceWithRecovery: the source keeps no position, so a run
// with recovery on another number of workers reads the new input whole,
// and the positions of the flow's other steps still resume.
func TestReaderSourceWithRecovery(t *testing.T) {
	db := filepath.Join(t.TempDir(), "db")
	if err := recovery.Init(db, 1); err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		workers int
		in      string
		want    []string
	}{{1, "a\nb\n", []string{"a", "b"}}, {3, "c\n", []string{"c"}}, {2, "", nil}} {
		flow := runnel.NewDataflow("f")
		sink := runneltest.NewSink[string]()
		op.Output("out", op.Input("lines", flow, stdio.NewReaderSource(strings.NewReader(tc.in))), sink)
		if err := runnel.Run(context.Background(), flow, runneltest.Config(tc.workers, time.Hour, db)); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if got := sink.Items(); !slices.Equal(got, tc.want) {
			t.Errorf("run %d on %d workers: got %q, want %q", i, tc.workers, got, tc.want)
		}
	}
}
