// Package api serves a running flow's operations endpoints on --api-addr:
// Prometheus metrics at /metrics, the flow's graph at /dataflow, a live
// state document at /api/state with the web view at / that draws it, and
// net/http/pprof under /debug/pprof/ with --api-pprof.
//
// The workers never wait for it: it reads the counters they update with
// atomics (engine.Stats), and keeps a short history by sampling them once a
// second on its own goroutine.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/runnel-dev/runnel/internal/engine"
	"github.com/runnel-dev/runnel/internal/plan"
)

// StepInfo describes a step of the attached run.
type StepInfo = plan.GraphStep

// Run is what a run shows: its graph and the counters its workers and
// committer update.
type Run struct {
	Graph    plan.Graph
	Start    time.Time
	Workers  []*engine.Stats        // by worker index
	InFlight func(worker int) int64 // items sent by the worker and not yet handled; may be nil
	Commits  *Commits               // nil without a recovery directory
	// Interval is the epoch length (-s).
	Interval time.Duration
}

// Commits are the committer's counters.
type Commits struct {
	Epoch    atomic.Uint64 // the last committed epoch
	At       atomic.Int64  // Unix nanoseconds of the last commit; 0: none yet
	Rows     atomic.Int64
	Bytes    atomic.Int64
	Duration engine.Histogram // seconds per commit
}

// CommitBounds are the buckets of Commits.Duration, in seconds.
var CommitBounds = []float64{0.001, 0.004, 0.016, 0.064, 0.256, 1, 4, 16}

// NewCommits makes the committer's counters.
func NewCommits() *Commits {
	return &Commits{Duration: engine.NewHistogram(CommitBounds, 1e9)}
}

// Options configure a Server.
type Options struct {
	// Pprof mounts net/http/pprof under /debug/pprof/.
	Pprof bool
	// Gatherer adds the user's metrics to /metrics (default: Prometheus's
	// default registry, where prometheus.MustRegister puts collectors).
	Gatherer prometheus.Gatherer
}

// Server serves the endpoints on one listener until Close.
type Server struct {
	ln   net.Listener
	srv  *http.Server
	run  atomic.Pointer[Run]
	hist history

	mu     sync.Mutex
	events []Event // recent warnings and errors, newest last

	stop chan struct{}
	wg   sync.WaitGroup
}

// Event is a warning or error shown in the web view.
type Event struct {
	Time    time.Time `json:"time"`
	Level   string    `json:"level"`
	Message string    `json:"message"`
}

const maxEvents = 100

// Start serves on ln (which the caller opened, so that an address in use is
// reported before the flow starts) until Close.
func Start(ln net.Listener, opt Options) *Server {
	s := &Server{ln: ln, stop: make(chan struct{})}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{s})
	user := opt.Gatherer
	if user == nil {
		user = prometheus.DefaultGatherer
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(prometheus.Gatherers{reg, user},
		promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("GET /dataflow", s.serveDataflow)
	mux.HandleFunc("GET /api/state", s.serveState)
	mux.Handle("GET /", webHandler())
	if opt.Pprof {
		// With methods, like "GET /": a pattern without one would conflict.
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	s.wg.Go(func() { _ = s.srv.Serve(ln) })
	s.wg.Go(s.sample)
	return s
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Attach shows run r. Its Stats must be fully built (no more steps added).
func (s *Server) Attach(r *Run) {
	s.run.Store(r)
	s.hist.reset(r)
}

// Report records a warning or error for the web view.
func (s *Server) Report(level, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, Event{Time: time.Now(), Level: level, Message: msg})
	if len(s.events) > maxEvents {
		s.events = append(s.events[:0], s.events[len(s.events)-maxEvents:]...)
	}
}

// Close stops serving, waiting briefly for requests in progress (a
// profile being taken is cut short).
func (s *Server) Close() error {
	close(s.stop)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = s.srv.Close()
	}
	s.wg.Wait()
	return err
}

func (s *Server) serveDataflow(w http.ResponseWriter, _ *http.Request) {
	r := s.run.Load()
	if r == nil {
		http.Error(w, "the flow is not running yet", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(r.Graph.JSON()))
}

func (s *Server) serveState(w http.ResponseWriter, _ *http.Request) {
	st := s.state(time.Now())
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(st)
}

// EventHandler wraps h so that warnings and errors logged through it also
// appear in the web view's list of events.
func (s *Server) EventHandler(h slog.Handler) slog.Handler { return eventHandler{h, s, ""} }

type eventHandler struct {
	h      slog.Handler
	s      *Server
	prefix string // attributes added with WithAttrs, as text
}

func (e eventHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || e.h.Enabled(ctx, l)
}

func (e eventHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		var b strings.Builder
		b.WriteString(r.Message)
		b.WriteString(e.prefix)
		r.Attrs(func(a slog.Attr) bool {
			fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
			return true
		})
		e.s.Report(r.Level.String(), b.String())
	}
	if e.h.Enabled(ctx, r.Level) {
		return e.h.Handle(ctx, r)
	}
	return nil
}

func (e eventHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(e.prefix)
	for _, a := range attrs {
		if a.Key == "flow" {
			continue
		}
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	return eventHandler{e.h.WithAttrs(attrs), e.s, b.String()}
}

func (e eventHandler) WithGroup(name string) slog.Handler {
	return eventHandler{e.h.WithGroup(name), e.s, e.prefix}
}
