package api

import (
	"sync"
	"time"

	"github.com/runnel-dev/runnel/internal/plan"
)

// historyLen is how many one-second samples the web view's charts show.
const historyLen = 300

// sampleEvery is the history's resolution.
const sampleEvery = time.Second

// sample is the totals of the attached run at one moment.
type sample struct {
	at   time.Time
	in   []int64   // per step, summed over workers
	out  [][]int64 // per step and output
	port [][]int64 // per step and input: items handled from it
	busy []int64   // per worker: nanoseconds in steps' code
}

// history keeps the last samples, for rates and charts.
type history struct {
	mu      sync.Mutex
	run     *Run
	samples []sample // oldest first, at most historyLen+1
}

func (h *history) reset(r *Run) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.run = r
	h.samples = nil
}

func (h *history) add(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.run == nil {
		return
	}
	h.samples = append(h.samples, take(h.run, now))
	if len(h.samples) > historyLen+1 {
		h.samples = append(h.samples[:0], h.samples[len(h.samples)-historyLen-1:]...)
	}
}

func take(r *Run, now time.Time) sample {
	n := len(r.Graph.Steps)
	s := sample{at: now, in: make([]int64, n), out: make([][]int64, n), port: make([][]int64, n), busy: make([]int64, len(r.Workers))}
	for i, gs := range r.Graph.Steps {
		s.out[i] = make([]int64, max(gs.Outputs, 0))
		s.port[i] = make([]int64, len(gs.Inputs))
	}
	for w, ws := range r.Workers {
		for i, st := range ws.Steps {
			if st == nil || i >= n {
				continue
			}
			s.in[i] += st.ItemsIn.Load()
			for o, c := range st.Out {
				if o < len(s.out[i]) {
					s.out[i][o] += c.Load()
				}
			}
			for p, c := range st.In {
				if p < len(s.port[i]) {
					s.port[i][p] += c.Load()
				}
			}
			s.busy[w] += int64(st.BatchTime.Sum.Load())
		}
	}
	return s
}

// sample runs on its own goroutine until Close.
func (s *Server) sample() {
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		select {
		case now := <-t.C:
			s.hist.add(now)
		case <-s.stop:
			return
		}
	}
}

// State is the document at /api/state that the web view polls.
type State struct {
	Flow     string       `json:"flow"`
	Running  bool         `json:"running"`
	Now      int64        `json:"now_ms"`
	Started  int64        `json:"started_ms"`
	Interval float64      `json:"epoch_interval_seconds"`
	Graph    *plan.Graph  `json:"graph,omitempty"`
	Steps    []StepState  `json:"steps"`
	Edges    []EdgeState  `json:"edges"`
	Workers  []WorkerInfo `json:"workers"`
	Recovery *Recovery    `json:"recovery,omitempty"`
	// History holds, per step id, items in per second over the last
	// minutes, oldest first, one value per HistoryStep seconds.
	History     map[string][]float64 `json:"history"`
	HistoryStep float64              `json:"history_step_seconds"`
	Events      []Event              `json:"events"`
}

// StepState is one step's totals (over all workers) and current rates.
type StepState struct {
	ID      string  `json:"id"`
	ItemsIn int64   `json:"items_in"`
	Out     []int64 `json:"items_out"`
	InRate  float64 `json:"in_per_second"`
	OutRate float64 `json:"out_per_second"`
	Keys    *int64  `json:"state_keys,omitempty"`
	Late    *int64  `json:"late_items,omitempty"`
	Busy    float64 `json:"busy_seconds"`
	Workers []int64 `json:"items_in_by_worker"`
	// SourceDone and SourceTotal are an input's progress where its
	// partitions know it (bytes, items or offsets).
	SourceDone  *int64 `json:"source_done,omitempty"`
	SourceTotal *int64 `json:"source_total,omitempty"`
}

// EdgeState is one stream's total and rate.
type EdgeState struct {
	plan.GraphEdge
	Items int64   `json:"items"`
	Rate  float64 `json:"per_second"`
	// Queued is how many items the producer emitted on this edge that the
	// consumer has not handled yet: in exchange buffers, mailboxes, or
	// held for barrier alignment.
	Queued int64 `json:"queued"`
}

// WorkerInfo is one worker's epoch, load and queue.
type WorkerInfo struct {
	Index        int     `json:"index"`
	Epoch        uint64  `json:"epoch"`
	EpochsClosed int64   `json:"epochs_closed"`
	InFlight     int64   `json:"inflight_items"`
	Load         float64 `json:"load"` // fraction of the last second spent in steps' code
}

// Recovery is the committer's state.
type Recovery struct {
	CommittedEpoch uint64  `json:"committed_epoch"`
	LastCommitMS   int64   `json:"last_commit_ms,omitempty"`
	CommitAge      float64 `json:"last_commit_age_seconds,omitempty"`
	Rows           int64   `json:"snapshot_rows"`
	Bytes          int64   `json:"snapshot_bytes"`
}

func (s *Server) state(now time.Time) State {
	st := State{Running: false, Now: now.UnixMilli(), Steps: []StepState{}, Edges: []EdgeState{},
		Workers: []WorkerInfo{}, History: map[string][]float64{}, HistoryStep: sampleEvery.Seconds()}
	s.mu.Lock()
	st.Events = append([]Event{}, s.events...)
	s.mu.Unlock()
	r := s.run.Load()
	if r == nil {
		return st
	}
	st.Running = true
	st.Flow = r.Graph.Flow
	st.Started = r.Start.UnixMilli()
	st.Interval = r.Interval.Seconds()
	g := r.Graph
	st.Graph = &g

	cur := take(r, now)
	s.hist.mu.Lock()
	samples := s.hist.samples
	var prev *sample
	if len(samples) > 0 {
		prev = &samples[len(samples)-1]
		if now.Sub(prev.at) < sampleEvery/2 && len(samples) > 1 {
			prev = &samples[len(samples)-2]
		}
	}
	for i, gs := range g.Steps {
		h := make([]float64, 0, len(samples))
		for j := 1; j < len(samples); j++ {
			dt := samples[j].at.Sub(samples[j-1].at).Seconds()
			h = append(h, float64(samples[j].in[i]-samples[j-1].in[i])/dt)
		}
		st.History[gs.ID] = h
	}
	var pbusy []int64
	var pout [][]int64
	var pin []int64
	var dt float64
	if prev != nil {
		pbusy, pout, pin, dt = prev.busy, prev.out, prev.in, now.Sub(prev.at).Seconds()
	}
	s.hist.mu.Unlock()

	rate := func(now, before int64) float64 {
		if dt <= 0 {
			return 0
		}
		return float64(now-before) / dt
	}
	for i, gs := range g.Steps {
		ss := StepState{ID: gs.ID, ItemsIn: cur.in[i], Out: cur.out[i], Workers: make([]int64, len(r.Workers))}
		if pin != nil {
			ss.InRate = rate(cur.in[i], pin[i])
			if len(cur.out[i]) > 0 {
				ss.OutRate = rate(cur.out[i][0], pout[i][0])
			}
		}
		var keys, late, done, total int64
		known := false
		for w, ws := range r.Workers {
			if i < len(ws.Steps) && ws.Steps[i] != nil {
				x := ws.Steps[i]
				ss.Workers[w] = x.ItemsIn.Load()
				ss.Busy += float64(x.BatchTime.Sum.Load()) / 1e9
				keys += x.Keys.Load()
				if x.SourceKnown.Load() {
					known = true
					done += x.SourceDone.Load()
					total += x.SourceTotal.Load()
				}
			}
		}
		if known {
			ss.SourceDone, ss.SourceTotal = &done, &total
		}
		if gs.Stateful && !gs.Input && !gs.Output {
			ss.Keys = &keys
		}
		if isWindow(gs) && len(cur.out[i]) > 1 {
			late = cur.out[i][1]
			ss.Late = &late
		}
		st.Steps = append(st.Steps, ss)
	}
	index := map[string]int{}
	for i, gs := range g.Steps {
		index[gs.ID] = i
	}
	for _, e := range g.Edges {
		es := EdgeState{GraphEdge: e}
		i := index[e.From]
		if e.FromPort < len(cur.out[i]) {
			es.Items = cur.out[i][e.FromPort]
			if pout != nil {
				es.Rate = rate(es.Items, pout[i][e.FromPort])
			}
		}
		es.Queued = queued(cur, i, e.FromPort, index[e.To], e.ToPort)
		st.Edges = append(st.Edges, es)
	}
	for w, ws := range r.Workers {
		wi := WorkerInfo{Index: w, Epoch: ws.Epoch.Load(), EpochsClosed: ws.EpochsClosed.Load()}
		if r.InFlight != nil {
			wi.InFlight = r.InFlight(w)
		}
		if pbusy != nil && dt > 0 {
			wi.Load = min(float64(cur.busy[w]-pbusy[w])/1e9/dt, 1)
		}
		st.Workers = append(st.Workers, wi)
	}
	if c := r.Commits; c != nil {
		rec := &Recovery{CommittedEpoch: c.Epoch.Load(), Rows: c.Rows.Load(), Bytes: c.Bytes.Load()}
		if at := c.At.Load(); at != 0 {
			rec.LastCommitMS = at / 1e6
			rec.CommitAge = now.Sub(time.Unix(0, at)).Seconds()
		}
		st.Recovery = rec
	}
	return st
}

// queued is what the producer (step from, output port) emitted that the
// consumer (step to, input in) has not handled. The two counters are read
// one after the other, so a batch in between can make it briefly negative:
// it is clamped at 0.
func queued(s sample, from, port, to, in int) int64 {
	if port >= len(s.out[from]) || in >= len(s.port[to]) {
		return 0
	}
	return max(s.out[from][port]-s.port[to][in], 0)
}
