package engine

import (
	"sync/atomic"
	"time"
)

// Stats are what one worker counts while it runs, for metrics and the web
// view. The worker writes them with atomic operations once per batch (never
// per item) and other goroutines read them at any time. A nil *Stats in
// Config turns counting off; the hot path then pays one nil check per batch.
type Stats struct {
	// Now is a monotonic time source for timing batches (the engine never
	// reads the wall clock itself).
	Now func() time.Duration

	Epoch        atomic.Uint64 // the open epoch
	EpochsClosed atomic.Int64
	Steps        []*StepStats // by step index; filled while steps are built

	sampleEvery time.Duration
	nested      time.Duration // time of calls nested in the one being timed
}

// StepStats are the counters of one step on one worker.
type StepStats struct {
	ItemsIn atomic.Int64 // items handed to the step's logic
	// Out counts the items each output emitted, by output index.
	Out []*atomic.Int64
	// In counts the items handed to the step's logic by input index (they
	// sum to ItemsIn). An edge's queued items are its producer's Out minus
	// its consumer's In, summed over workers.
	In []*atomic.Int64
	// BatchItems and BatchTime are histograms of the batches the step
	// handled: their size, and the time spent in the step's own code
	// (user functions included, downstream steps excluded).
	BatchItems Histogram
	BatchTime  Histogram
	// Keys is how many keys the step holds in state, sampled by the worker
	// about four times a second (stateful steps only).
	Keys atomic.Int64
	// SourceDone and SourceTotal are how much of its input an input step
	// has read and how much there is, summed over the partitions this
	// worker reads that know it (SourceProgress), sampled about once a
	// second. SourceKnown says whether any partition does.
	SourceDone, SourceTotal atomic.Int64
	SourceKnown             atomic.Bool

	keys    func() int
	sources func() (done, total int64, known bool)
}

// SourceProgress is implemented by source partitions that know how much
// of their input they have read and how much there is: bytes of a file,
// items of a list, offsets of a Kafka partition. It feeds --progress's
// percentage and the runnel_source_remaining metric. The engine calls it on
// the worker's goroutine, between batches, about four times a second and only
// while metrics or progress are on. Total may grow (a growing file, new
// Kafka messages).
type SourceProgress interface {
	Progress() (done, total int64)
}

// Histogram is a fixed-bucket histogram updated with atomics.
type Histogram struct {
	Bounds []float64 // upper bounds of the buckets, increasing; +Inf is implicit
	counts []atomic.Uint64
	Sum    atomic.Uint64 // in the unit of Bounds, times SumScale
	Count  atomic.Uint64
	// SumScale converts Sum to the unit of Bounds (Sum/SumScale).
	SumScale float64
}

// BatchItemBounds are the buckets of StepStats.BatchItems.
var BatchItemBounds = []float64{1, 4, 16, 64, 256, 1024, 4096}

// BatchTimeBounds are the buckets of StepStats.BatchTime, in seconds.
var BatchTimeBounds = []float64{1e-6, 4e-6, 16e-6, 64e-6, 256e-6, 1e-3, 4e-3, 16e-3, 64e-3, 256e-3, 1}

// NewHistogram makes a histogram with the given bucket bounds; observed
// values are summed as integers of 1/scale of the bounds' unit.
func NewHistogram(bounds []float64, scale float64) Histogram {
	return Histogram{Bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1), SumScale: scale}
}

// Observe records v (in the unit of Bounds) whose raw sum contribution is
// raw (v times SumScale, as an integer).
func (h *Histogram) Observe(v float64, raw uint64) {
	i := 0
	for i < len(h.Bounds) && v > h.Bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.Sum.Add(raw)
	h.Count.Add(1)
}

// Buckets returns the cumulative count of each bucket in Bounds (the +Inf
// bucket is Count).
func (h *Histogram) Buckets() []uint64 {
	out := make([]uint64, len(h.Bounds))
	var c uint64
	for i := range h.Bounds {
		c += h.counts[i].Load()
		out[i] = c
	}
	return out
}

// NewStats makes the counters of one worker; now must be monotonic.
func NewStats(now func() time.Duration) *Stats {
	return &Stats{Now: now, sampleEvery: 250 * time.Millisecond}
}

func (s *Stats) step(idx int) *StepStats {
	for len(s.Steps) <= idx {
		s.Steps = append(s.Steps, nil)
	}
	if s.Steps[idx] == nil {
		s.Steps[idx] = &StepStats{
			BatchItems: NewHistogram(BatchItemBounds, 1),
			BatchTime:  NewHistogram(BatchTimeBounds, 1e9),
		}
	}
	return s.Steps[idx]
}

func (st *StepStats) input(i int) *atomic.Int64 {
	for len(st.In) <= i {
		st.In = append(st.In, new(atomic.Int64))
	}
	return st.In[i]
}

func (st *StepStats) output(i int) *atomic.Int64 {
	for len(st.Out) <= i {
		st.Out = append(st.Out, new(atomic.Int64))
	}
	return st.Out[i]
}

// stepStats is the counters of the step being built, or nil when counting
// is off.
func (b *Builder) stepStats() *StepStats {
	if b.w.stats == nil {
		return nil
	}
	return b.w.stats.step(b.stepIdx)
}

// ReportKeys registers how a stateful step counts the keys it holds. The
// worker calls keys on its own goroutine about four times a second while counting
// is on, and never when it is off.
func (b *Builder) ReportKeys(keys func() int) {
	if st := b.stepStats(); st != nil {
		st.keys = keys
	}
}

// begin starts timing a step's batch; end records it. Time spent in nested
// steps (downstream steps the batch is pushed to on the same worker) is not
// the step's own and is subtracted.
func (s *Stats) begin() (outer, start time.Duration) {
	outer = s.nested
	s.nested = 0
	return outer, s.Now()
}

func (s *Stats) end(st *StepStats, n int, outer, start time.Duration) {
	total := s.Now() - start
	own := max(total-s.nested, 0)
	s.nested = outer + total
	st.ItemsIn.Add(int64(n))
	st.BatchItems.Observe(float64(n), uint64(n))
	st.BatchTime.Observe(own.Seconds(), uint64(own))
}

// Sample refreshes at once what is otherwise sampled about four times a second
// (keys in state). Call it on the worker's goroutine, for example when the
// worker ends.
func (w *Worker) Sample() {
	w.nextSample = time.Time{}
	w.sample(w.clock.Now())
}

// sample refreshes what is sampled rather than counted: keys in state.
func (w *Worker) sample(now time.Time) {
	s := w.stats
	if s == nil || now.Before(w.nextSample) {
		return
	}
	w.nextSample = now.Add(s.sampleEvery)
	for _, st := range s.Steps {
		if st == nil {
			continue
		}
		if st.keys != nil {
			st.Keys.Store(int64(st.keys()))
		}
		if st.sources != nil {
			done, total, known := st.sources()
			st.SourceDone.Store(done)
			st.SourceTotal.Store(total)
			st.SourceKnown.Store(known)
		}
	}
}
