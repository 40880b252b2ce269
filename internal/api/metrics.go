package api

import (
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/runnel-dev/runnel/internal/engine"
)

// The metrics, documented in docs/operations.md. Every series carries the
// flow id; step series carry the full step id and the worker index.
var (
	stepLabels   = []string{"flow", "step", "worker"}
	workerLabels = []string{"flow", "worker"}
	flowLabels   = []string{"flow"}

	descItemsIn = prometheus.NewDesc("runnel_step_items_in_total",
		"Items handed to the step's logic (for an input step: items read from its source).", stepLabels, nil)
	descItemsOut = prometheus.NewDesc("runnel_step_items_out_total",
		"Items the step emitted, by output (0 is the main output; window steps emit late items on 1 and metadata on 2).",
		append(stepLabels, "output"), nil)
	descBatchItems = prometheus.NewDesc("runnel_step_batch_size_items",
		"Size of the batches the step handled.", stepLabels, nil)
	descBatchTime = prometheus.NewDesc("runnel_step_batch_duration_seconds",
		"Time the step spent in its own code (user functions included, downstream steps excluded) per batch.", stepLabels, nil)
	descKeys = prometheus.NewDesc("runnel_step_state_keys",
		"Keys the stateful step holds in state on the worker (sampled four times a second).", stepLabels, nil)
	descLate = prometheus.NewDesc("runnel_window_late_items_total",
		"Items a window step found late (past the watermark and the allowed lateness) and emitted on its late stream instead of a window.",
		stepLabels, nil)
	descRemaining = prometheus.NewDesc("runnel_source_remaining",
		"How much input is left to read where the source knows it: bytes for files, items for test lists, offsets behind for Kafka (sampled four times a second).",
		stepLabels, nil)
	descQueued = prometheus.NewDesc("runnel_edge_queued_items",
		"Items a step emitted on an edge that the next step has not handled yet (in exchange buffers, mailboxes, or held for barrier alignment), over all workers.",
		[]string{"flow", "from", "output", "to", "input"}, nil)
	descEpoch = prometheus.NewDesc("runnel_worker_epoch",
		"The epoch the worker has open.", workerLabels, nil)
	descEpochsClosed = prometheus.NewDesc("runnel_worker_epochs_closed_total",
		"Epochs the worker closed (barriers it sent).", workerLabels, nil)
	descInFlight = prometheus.NewDesc("runnel_worker_inflight_items",
		"Items the worker sent to other workers that they have not handled yet (flow control stops its inputs above the limit).",
		workerLabels, nil)
	descWorkers = prometheus.NewDesc("runnel_run_workers",
		"Workers in this process.", flowLabels, nil)
	descStart = prometheus.NewDesc("runnel_run_start_timestamp_seconds",
		"When the run started, in Unix seconds.", flowLabels, nil)
	descCommitted = prometheus.NewDesc("runnel_recovery_committed_epoch",
		"The last epoch committed to the recovery directory (its snapshots are durable); 0 before the first commit.",
		flowLabels, nil)
	descLastCommit = prometheus.NewDesc("runnel_recovery_last_commit_timestamp_seconds",
		"When the last epoch was committed, in Unix seconds (absent before the first commit).", flowLabels, nil)
	descCommitTime = prometheus.NewDesc("runnel_recovery_commit_duration_seconds",
		"Time to write an epoch's snapshots and commit it (one observation per commit, which may cover several epochs).",
		flowLabels, nil)
	descRows = prometheus.NewDesc("runnel_recovery_snapshot_rows_total",
		"State rows (changed keys and positions) written to the recovery directory.", flowLabels, nil)
	descBytes = prometheus.NewDesc("runnel_recovery_snapshot_bytes_total",
		"Bytes of keys and encoded state written to the recovery directory.", flowLabels, nil)
)

// collector exposes the attached run's counters. It reads atomics only, so
// a scrape never stops a worker.
type collector struct{ s *Server }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descItemsIn, descItemsOut, descBatchItems, descBatchTime, descKeys,
		descLate, descRemaining, descQueued, descEpoch, descEpochsClosed, descInFlight, descWorkers, descStart, descCommitted,
		descLastCommit, descCommitTime, descRows, descBytes} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	r := c.s.run.Load()
	if r == nil {
		return
	}
	flow := r.Graph.Flow
	ch <- prometheus.MustNewConstMetric(descWorkers, prometheus.GaugeValue, float64(len(r.Workers)), flow)
	ch <- prometheus.MustNewConstMetric(descStart, prometheus.GaugeValue, float64(r.Start.UnixNano())/1e9, flow)
	for w, ws := range r.Workers {
		wl := strconv.Itoa(w)
		ch <- prometheus.MustNewConstMetric(descEpoch, prometheus.GaugeValue, float64(ws.Epoch.Load()), flow, wl)
		ch <- prometheus.MustNewConstMetric(descEpochsClosed, prometheus.CounterValue, float64(ws.EpochsClosed.Load()), flow, wl)
		if r.InFlight != nil {
			ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(r.InFlight(w)), flow, wl)
		}
		for i, st := range ws.Steps {
			if st == nil || i >= len(r.Graph.Steps) {
				continue
			}
			gs := r.Graph.Steps[i]
			ch <- prometheus.MustNewConstMetric(descItemsIn, prometheus.CounterValue, float64(st.ItemsIn.Load()), flow, gs.ID, wl)
			for o, n := range st.Out {
				ch <- prometheus.MustNewConstMetric(descItemsOut, prometheus.CounterValue, float64(n.Load()), flow, gs.ID, wl, strconv.Itoa(o))
			}
			ch <- histogram(descBatchItems, &st.BatchItems, flow, gs.ID, wl)
			ch <- histogram(descBatchTime, &st.BatchTime, flow, gs.ID, wl)
			if gs.Stateful && !gs.Input && !gs.Output {
				ch <- prometheus.MustNewConstMetric(descKeys, prometheus.GaugeValue, float64(st.Keys.Load()), flow, gs.ID, wl)
			}
			if gs.Input && st.SourceKnown.Load() {
				left := st.SourceTotal.Load() - st.SourceDone.Load()
				ch <- prometheus.MustNewConstMetric(descRemaining, prometheus.GaugeValue, float64(max(left, 0)), flow, gs.ID, wl)
			}
			if isWindow(gs) && len(st.Out) > 1 {
				ch <- prometheus.MustNewConstMetric(descLate, prometheus.CounterValue, float64(st.Out[1].Load()), flow, gs.ID, wl)
			}
		}
	}
	if len(r.Graph.Edges) > 0 {
		s := take(r, time.Now())
		index := make(map[string]int, len(r.Graph.Steps))
		for i, gs := range r.Graph.Steps {
			index[gs.ID] = i
		}
		for _, e := range r.Graph.Edges {
			q := queued(s, index[e.From], e.FromPort, index[e.To], e.ToPort)
			ch <- prometheus.MustNewConstMetric(descQueued, prometheus.GaugeValue, float64(q),
				flow, e.From, strconv.Itoa(e.FromPort), e.To, strconv.Itoa(e.ToPort))
		}
	}
	if cm := r.Commits; cm != nil {
		ch <- prometheus.MustNewConstMetric(descCommitted, prometheus.GaugeValue, float64(cm.Epoch.Load()), flow)
		if at := cm.At.Load(); at != 0 {
			ch <- prometheus.MustNewConstMetric(descLastCommit, prometheus.GaugeValue, float64(at)/1e9, flow)
		}
		ch <- histogram(descCommitTime, &cm.Duration, flow)
		ch <- prometheus.MustNewConstMetric(descRows, prometheus.CounterValue, float64(cm.Rows.Load()), flow)
		ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(cm.Bytes.Load()), flow)
	}
}

// isWindow says whether a step is a window operator, whose output 1 is its
// late stream.
func isWindow(s StepInfo) bool { return strings.HasSuffix(s.Kind, "window") && s.Outputs == 3 }

func histogram(d *prometheus.Desc, h *engine.Histogram, labels ...string) prometheus.Metric {
	// Count is read last, so the +Inf bucket is never below a finite one.
	cum := h.Buckets()
	buckets := make(map[float64]uint64, len(cum))
	for i, b := range h.Bounds {
		buckets[b] = cum[i]
	}
	sum := float64(h.Sum.Load()) / h.SumScale
	count := h.Count.Load()
	if len(cum) > 0 {
		count = max(count, cum[len(cum)-1])
	}
	return prometheus.MustNewConstHistogram(d, count, sum, buckets, labels...)
}
