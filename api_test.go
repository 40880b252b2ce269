package runnel_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/recovery"
	"github.com/runnel-dev/runnel/runneltest"
)

// heldSource emits, on each worker, the ints [w*n, (w+1)*n): the first half
// at once, the second half once release is closed, and then nothing until
// the run stops. A test can therefore look at a run at two known points.
type heldSource struct {
	n       int
	release <-chan struct{}
	built   *atomic.Int32
}

func (s heldSource) Build(bc runnel.BuildContext) (runnel.SourcePartition[int], error) {
	worker := bc.Worker
	if s.built != nil {
		s.built.Add(1)
	}
	return &heldPart{s: s, next: worker * s.n, end: (worker + 1) * s.n, half: worker*s.n + s.n/2}, nil
}

type heldPart struct {
	s               heldSource
	next, half, end int
	buf             []int
}

func (p *heldPart) NextBatch() ([]int, error) {
	limit := p.half
	select {
	case <-p.s.release:
		limit = p.end
	default:
	}
	p.buf = p.buf[:0]
	for p.next < limit && len(p.buf) < 100 {
		p.buf = append(p.buf, p.next)
		p.next++
	}
	return p.buf, nil
}

// Progress reports the partition's size, for runnel_source_remaining.
func (p *heldPart) Progress() (done, total int64) {
	return int64(p.next - (p.end - p.s.n)), int64(p.s.n)
}

func (p *heldPart) NextAwake() time.Time { return time.Time{} }
func (p *heldPart) Close() error         { return nil }

// metricsFlow: input → triple → drop multiples of 5 → key mod 7 → running
// count → sink.
func metricsFlow(src heldSource, sink *runneltest.Sink[runnel.KV[string, int]]) *runnel.Dataflow {
	flow := runnel.NewDataflow("m")
	s := op.Input("inp", flow, runnel.DynamicInput[int](src))
	s = op.Map("triple", s, func(x int) int { return 3 * x })
	s = op.Filter("drop5", s, func(x int) bool { return x%5 != 0 })
	k := op.KeyOn("key", s, func(x int) string { return strconv.Itoa(x % 7) })
	c := op.StatefulMap("count", k, func(n int, _ bool, _ int) (int, bool, int) { return n + 1, true, n + 1 })
	op.Output("out", c, sink)
	return flow
}

// scrape fetches /metrics over HTTP and returns each series' value by
// name and labels, with the labels in the order the server wrote them.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %s\n%s", resp.Status, b)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad metrics line %q", line)
		}
		m[line[:i]] = v
	}
	return m
}

var labelRE = regexp.MustCompile(`(\w+)="([^"]*)"`)

// sum adds up the series of a metric whose labels include want.
func sum(m map[string]float64, name string, want map[string]string) float64 {
	var total float64
	for series, v := range m {
		n, labels, _ := strings.Cut(series, "{")
		if n != name {
			continue
		}
		got := map[string]string{}
		for _, l := range labelRE.FindAllStringSubmatch(labels, -1) {
			got[l[1]] = l[2]
		}
		ok := true
		for k, w := range want {
			ok = ok && got[k] == w
		}
		if ok {
			total += v
		}
	}
	return total
}

// stepCounts is what every step must have counted, summed over workers.
type stepCounts struct{ in, out float64 }

func wantCounts(items []int) map[string]stepCounts {
	kept := 0
	for _, x := range items {
		if (3*x)%5 != 0 {
			kept++
		}
	}
	n, k := float64(len(items)), float64(kept)
	return map[string]stepCounts{
		"m.inp": {n, n}, "m.triple": {n, n}, "m.drop5": {n, k},
		"m.key": {k, k}, "m.count": {k, k}, "m.out": {k, -1},
	}
}

func checkCounts(m map[string]float64, want map[string]stepCounts) error {
	var errs []error
	for step, c := range want {
		if got := sum(m, "runnel_step_items_in_total", map[string]string{"step": step}); got != c.in {
			errs = append(errs, fmt.Errorf("%s: items in %v, want %v", step, got, c.in))
		}
		if c.out < 0 {
			continue
		}
		if got := sum(m, "runnel_step_items_out_total", map[string]string{"step": step, "output": "0"}); got != c.out {
			errs = append(errs, fmt.Errorf("%s: items out %v, want %v", step, got, c.out))
		}
	}
	return errors.Join(errs...)
}

// waitFor scrapes until check passes, or fails the test after a generous
// deadline (the counts are exact; only how soon they are reached depends
// on the machine).
func waitFor(t *testing.T, addr string, what string, check func(map[string]float64) error) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		m := scrape(t, addr)
		err := check(m)
		if err == nil {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMetricsDuringRun scrapes /metrics over real HTTP while a flow runs on
// two workers with recovery, and checks that every step's item counters
// equal the items it processed: exactly, at a point where the input is
// held halfway, and again at the end.
func TestMetricsDuringRun(t *testing.T) {
	const n = 3000
	dir := t.TempDir()
	if err := recovery.Init(dir, 2); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	release, stop := make(chan struct{}), make(chan struct{})
	sink := runneltest.NewSink[runnel.KV[string, int]]()
	flow := metricsFlow(heldSource{n: n, release: release}, sink)
	cfg := runneltest.Config(2, 20*time.Millisecond, dir)
	done := make(chan error, 1)
	go func() {
		done <- runnel.Run(context.Background(), flow, cfg, runnel.WithAPIListener(ln), runnel.WithStop(stop))
	}()

	var half, all []int
	for w := range 2 {
		for x := w * n; x < (w+1)*n; x++ {
			all = append(all, x)
			if x < w*n+n/2 {
				half = append(half, x)
			}
		}
	}
	waitFor(t, addr, "halfway", func(m map[string]float64) error {
		if got := sum(m, "runnel_source_remaining", map[string]string{"step": "m.inp"}); got != n {
			return fmt.Errorf("source remaining %v, want %d", got, n)
		}
		return checkCounts(m, wantCounts(half))
	})
	if got := len(sink.Items()); got != int(wantCounts(half)["m.out"].in) {
		t.Errorf("halfway: the sink has %d items, the metrics say %v", got, wantCounts(half)["m.out"].in)
	}
	close(release)
	m := waitFor(t, addr, "at the end", func(m map[string]float64) error {
		if err := checkCounts(m, wantCounts(all)); err != nil {
			return err
		}
		if got := sum(m, "runnel_edge_queued_items", map[string]string{"flow": "m"}); got != 0 {
			return fmt.Errorf("%v items queued on edges after everything was handled", got)
		}
		if got := sum(m, "runnel_edge_queued_items", map[string]string{"from": "m.drop5", "output": "0", "to": "m.key", "input": "0"}); got != 0 {
			return fmt.Errorf("edge drop5 -> key queued %v", got)
		}
		if got := sum(m, "runnel_source_remaining", map[string]string{"step": "m.inp"}); got != 0 {
			return fmt.Errorf("source remaining %v, want 0", got)
		}
		if got := sum(m, "runnel_step_state_keys", map[string]string{"step": "m.count"}); got != 7 {
			return fmt.Errorf("state keys %v, want 7", got)
		}
		if got := sum(m, "runnel_recovery_committed_epoch", nil); got < 1 {
			return fmt.Errorf("committed epoch %v, want at least 1", got)
		}
		return nil
	})
	if got := len(sink.Items()); float64(got) != wantCounts(all)["m.out"].in {
		t.Errorf("the sink has %d items, the metrics say %v", got, wantCounts(all)["m.out"].in)
	}
	edges := 0
	for series := range m {
		if strings.HasPrefix(series, "runnel_edge_queued_items{") {
			edges++
		}
	}
	if edges != 5 {
		t.Errorf("%d runnel_edge_queued_items series, want one per edge (5)", edges)
	}
	// Per worker: each worker read its own n items.
	for w := range 2 {
		if got := sum(m, "runnel_step_items_in_total", map[string]string{"step": "m.inp", "worker": strconv.Itoa(w)}); got != n {
			t.Errorf("worker %d read %v items, want %d", w, got, n)
		}
	}
	// Batch histograms count every item once.
	if got := sum(m, "runnel_step_batch_size_items_sum", map[string]string{"step": "m.count"}); got != wantCounts(all)["m.count"].in {
		t.Errorf("batch size sum %v, want %v", got, wantCounts(all)["m.count"].in)
	}
	for _, name := range []string{"runnel_recovery_snapshot_rows_total", "runnel_recovery_commit_duration_seconds_count",
		"runnel_worker_epochs_closed_total", "runnel_step_batch_duration_seconds_count", "go_goroutines"} {
		if sum(m, name, nil) <= 0 {
			t.Errorf("%s is not positive", name)
		}
	}
	if sum(m, "runnel_run_workers", map[string]string{"flow": "m"}) != 2 {
		t.Errorf("runnel_run_workers is not 2")
	}

	// /dataflow serves the graph that --print-flow json prints.
	resp, err := http.Get("http://" + addr + "/dataflow")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != flow.Graph().JSON() {
		t.Errorf("/dataflow = %s, want %s", body, flow.Graph().JSON())
	}

	close(stop)
	if err := <-done; !errors.Is(err, runnel.ErrInterrupted) {
		t.Fatalf("Run = %v, want an interrupted run", err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after Run returned", addr)
	}
}

// An address in use, or one that cannot be listened on, stops the run
// before anything is built or read, and the error names the flag.
func TestAPIAddrRefused(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		addr string
		want []string
	}{
		{busy.Addr().String(), []string{"--api-addr " + busy.Addr().String(), "address already in use"}},
		{"127.0.0.1:99999", []string{"--api-addr", `invalid port "99999"`}},
		{"127.0.0.1", []string{"--api-addr", "not host:port"}},
		{"256.1.1.1:80", []string{"--api-addr 256.1.1.1:80", "cannot serve"}},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			var built atomic.Int32
			sink := runneltest.NewSink[runnel.KV[string, int]]()
			flow := metricsFlow(heldSource{n: 10, release: make(chan struct{}), built: &built}, sink)
			cfg := runneltest.Config(1, time.Hour, "")
			cfg.APIAddr = tc.addr
			err := runnel.Run(context.Background(), flow, cfg)
			if err == nil {
				t.Fatal("Run succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if built.Load() != 0 || len(sink.Items()) != 0 {
				t.Errorf("the flow started: %d sources built, %d items out", built.Load(), len(sink.Items()))
			}
		})
	}
}
