// Package bench holds Runnel's benchmarks. Each compares a flow against a
// hand-written Go baseline doing the same work, in the same run; read the
// ratios, not the absolute numbers (see README.md).
package bench

import (
	"context"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/op"
)

// pipelineItems is the input size of BenchmarkPipeline.
const pipelineItems = 10_000_000

const keySpace = 10_000

// genSource generates the ints [0, n) split into contiguous ranges, one
// partition per range; its position is the next int to generate.
type genSource struct {
	n, parts int
}

func (g genSource) ListParts(context.Context) ([]string, error) {
	names := make([]string, g.parts)
	for i := range names {
		names[i] = "gen-" + strconv.Itoa(i)
	}
	return names, nil
}

func (g genSource) BuildPart(_ runnel.BuildContext, part string, resume *int) (runnel.StatefulSourcePartition[int, int], error) {
	i, _ := strconv.Atoi(part[len("gen-"):])
	p := &genPart{next: g.n * i / g.parts, end: g.n * (i + 1) / g.parts, buf: make([]int, 0, 1024)}
	if resume != nil {
		p.next = *resume
	}
	return p, nil
}

type genPart struct {
	next, end int
	buf       []int
}

func (p *genPart) NextBatch() ([]int, error) {
	if p.next >= p.end {
		return nil, io.EOF
	}
	n := min(cap(p.buf), p.end-p.next)
	p.buf = p.buf[:n]
	for i := range p.buf {
		p.buf[i] = p.next + i
	}
	p.next += n
	return p.buf, nil
}

func (p *genPart) NextAwake() time.Time   { return time.Time{} }
func (p *genPart) Snapshot() (int, error) { return p.next, nil }
func (p *genPart) Close() error           { return nil }

// sumSink adds up the counts it receives, per worker, into one total.
type sumSink[K runnel.Key] struct{ total *atomic.Int64 }

func (s sumSink[K]) Build(runnel.BuildContext) (runnel.SinkPartition[runnel.KV[K, int]], error) {
	return &sumPart[K]{total: s.total}, nil
}

type sumPart[K runnel.Key] struct {
	total *atomic.Int64
	sum   int64
}

func (p *sumPart[K]) WriteBatch(items []runnel.KV[K, int]) error {
	for _, kv := range items {
		p.sum += int64(kv.Value)
	}
	return nil
}

func (p *sumPart[K]) Close() error {
	p.total.Add(p.sum)
	return nil
}

func count(n int, _ bool, _ int) (int, bool, int) { return n + 1, true, n + 1 }

// pipeline builds x = i*3 → drop x%5 == 0 → key x % 10000 → running count
// per key → a sink that sums the counts.
func pipeline[K runnel.Key](n, parts int, key func(int) K, total *atomic.Int64) *runnel.Dataflow {
	flow := runnel.NewDataflow("bench")
	s := op.Input("gen", flow, runnel.PartitionedInput[int, int](genSource{n: n, parts: parts}))
	s = op.Map("triple", s, func(i int) int { return i * 3 })
	s = op.Filter("drop5", s, func(x int) bool { return x%5 != 0 })
	k := op.KeyOn("key", s, key)
	c := op.StatefulMap("count", k, count)
	op.Output("sum", c, runnel.DynamicOutput[runnel.KV[K, int]](sumSink[K]{total}))
	return flow
}

func stringKey(x int) string { return strconv.Itoa(x % keySpace) }
func intKey(x int) int       { return x % keySpace }

// handLoop is the single-loop baseline: the same work with string keys and
// no framework.
func handLoop(n int) int64 {
	counts := make(map[string]int)
	var sum int64
	for i := range n {
		x := i * 3
		if x%5 == 0 {
			continue
		}
		k := strconv.Itoa(x % keySpace)
		c := counts[k] + 1
		counts[k] = c
		sum += int64(c)
	}
	return sum
}

// handTwo is the two-goroutine baseline: each goroutine generates half the
// input and owns half the keys; items for the other goroutine's keys cross
// a channel in 1024-item batches.
func handTwo(n int) int64 {
	const batch = 1024
	chans := [2]chan []string{make(chan []string, 16), make(chan []string, 16)}
	var total atomic.Int64
	var producers, consumers sync.WaitGroup
	for w := range 2 {
		counts := make(map[string]int)
		var mu sync.Mutex // the local path and the receiver share counts
		apply := func(keys []string) int64 {
			mu.Lock()
			defer mu.Unlock()
			var s int64
			for _, k := range keys {
				c := counts[k] + 1
				counts[k] = c
				s += int64(c)
			}
			return s
		}
		consumers.Go(func() {
			var s int64
			for keys := range chans[w] {
				s += apply(keys)
			}
			total.Add(s)
		})
		producers.Go(func() {
			var s int64
			local := make([]string, 0, batch)
			remote := make([]string, 0, batch)
			for i := n * w / 2; i < n*(w+1)/2; i++ {
				x := i * 3
				if x%5 == 0 {
					continue
				}
				k := strconv.Itoa(x % keySpace)
				if int(xxhash.Sum64String(k)%2) == w {
					local = append(local, k)
					if len(local) == batch {
						s += apply(local)
						local = local[:0]
					}
				} else {
					remote = append(remote, k)
					if len(remote) == batch {
						chans[1-w] <- remote
						remote = make([]string, 0, batch)
					}
				}
			}
			s += apply(local)
			if len(remote) > 0 {
				chans[1-w] <- remote
			}
			total.Add(s)
		})
	}
	producers.Wait()
	close(chans[0])
	close(chans[1])
	consumers.Wait()
	return total.Load()
}

// expectedSum is what every variant must compute.
var expectedSum = sync.OnceValue(func() int64 { return handLoop(pipelineItems) })

func report(b *testing.B, items int, run func() int64) {
	b.Helper()
	reportWant(b, items, expectedSum(), run)
}

// reportWant runs run b.N times, checks its result against want, and
// reports items/s and allocs/item.
func reportWant(b *testing.B, items int, want int64, run func() int64) {
	b.Helper()
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if got := run(); got != want {
			b.Fatalf("sum = %d, want %d", got, want)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	runtime.ReadMemStats(&ms1)
	total := float64(items) * float64(b.N)
	b.ReportMetric(total/elapsed.Seconds(), "items/s")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/total, "allocs/item")
}

func runFlow[K runnel.Key](b *testing.B, workers int, epoch time.Duration, key func(int) K) func() int64 {
	return func() int64 {
		var total atomic.Int64
		flow := pipeline(pipelineItems, workers, key, &total)
		cfg := runnel.DefaultConfig()
		cfg.WorkersPerProcess = workers
		cfg.SnapshotInterval = epoch
		if err := runnel.Run(context.Background(), flow, cfg); err != nil {
			b.Fatal(err)
		}
		return total.Load()
	}
}

// BenchmarkPipeline compares Runnel with hand-written loops on the same
// pipeline over 10M ints. Sub-benchmarks: hand (one loop), hand-w2 (two
// goroutines, batched channel exchange), w1 (Runnel, 1 worker, string
// keys), w1-int (integer keys), w2 (2 workers, keyed exchange),
// w1-epoch10ms (epochs every 10ms, recovery off).
func BenchmarkPipeline(b *testing.B) {
	b.Run("hand", func(b *testing.B) { report(b, pipelineItems, func() int64 { return handLoop(pipelineItems) }) })
	b.Run("hand-w2", func(b *testing.B) { report(b, pipelineItems, func() int64 { return handTwo(pipelineItems) }) })
	b.Run("w1", func(b *testing.B) { report(b, pipelineItems, runFlow(b, 1, time.Hour, stringKey)) })
	b.Run("w1-int", func(b *testing.B) { report(b, pipelineItems, runFlow(b, 1, time.Hour, intKey)) })
	b.Run("w2", func(b *testing.B) { report(b, pipelineItems, runFlow(b, 2, time.Hour, stringKey)) })
	b.Run("w1-epoch10ms", func(b *testing.B) { report(b, pipelineItems, runFlow(b, 1, 10*time.Millisecond, stringKey)) })
}

// TestPipelineAgrees checks on a small input that every variant computes
// the same sum (the benchmark itself checks this at full size).
func TestPipelineAgrees(t *testing.T) {
	const n = 20_000
	want := handLoop(n)
	if got := handTwo(n); got != want {
		t.Fatalf("handTwo = %d, want %d", got, want)
	}
	for _, w := range []int{1, 2} {
		var total atomic.Int64
		cfg := runnel.DefaultConfig()
		cfg.WorkersPerProcess = w
		if err := runnel.Run(context.Background(), pipeline(n, w, stringKey, &total), cfg); err != nil {
			t.Fatal(err)
		}
		if total.Load() != want {
			t.Fatalf("%d workers: sum = %d, want %d", w, total.Load(), want)
		}
	}
}

// BenchmarkPipelineObserved measures what --api-addr costs: the w1
// pipeline with the API off, against the same run serving the API with a
// client that does what an open web view does (GET /api/state every
// second) plus a Prometheus scrape of /metrics every second. The two
// alternate within each iteration, so that both see the same machine; the
// api/off metric is their throughput ratio (target >= 0.97).
func BenchmarkPipelineObserved(b *testing.B) {
	var offTime, apiTime time.Duration
	for range b.N {
		start := time.Now()
		if got := runFlow(b, 1, time.Hour, stringKey)(); got != expectedSum() {
			b.Fatalf("sum = %d, want %d", got, expectedSum())
		}
		offTime += time.Since(start)

		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		stop := make(chan struct{})
		var polls sync.WaitGroup
		polls.Go(func() { watch(ln.Addr().String(), stop) })
		start = time.Now()
		var total atomic.Int64
		cfg := runnel.DefaultConfig()
		cfg.SnapshotInterval = time.Hour
		if err := runnel.Run(context.Background(), pipeline(pipelineItems, 1, stringKey, &total), cfg, runnel.WithAPIListener(ln)); err != nil {
			b.Fatal(err)
		}
		apiTime += time.Since(start)
		close(stop)
		polls.Wait()
		if total.Load() != expectedSum() {
			b.Fatalf("sum = %d, want %d", total.Load(), expectedSum())
		}
	}
	items := float64(pipelineItems) * float64(b.N)
	b.ReportMetric(items/offTime.Seconds(), "off-items/s")
	b.ReportMetric(items/apiTime.Seconds(), "api-items/s")
	b.ReportMetric(offTime.Seconds()/apiTime.Seconds(), "api/off")
}

// watch polls the API as an open web view and a Prometheus server would,
// until stop is closed.
func watch(addr string, stop <-chan struct{}) {
	get := func(path string) {
		resp, err := http.Get("http://" + addr + path)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	get("/")
	get("/app.js")
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		get("/api/state")
		get("/metrics")
		select {
		case <-t.C:
		case <-stop:
			return
		}
	}
}
