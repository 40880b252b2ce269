// Package runner is the concurrent shell around the engine: one goroutine
// per worker, the mailboxes between them, the recovery store and the
// committer that makes epochs durable, and the stop protocol. The engine
// itself stays a single-threaded state machine (see internal/engine).
package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/runnel-dev/runnel/internal/api"
	"github.com/runnel-dev/runnel/internal/config"
	"github.com/runnel-dev/runnel/internal/engine"
	"github.com/runnel-dev/runnel/internal/plan"
	"github.com/runnel-dev/runnel/recovery"
)

// Clock is the time source of a run. The real one is wall time; tests may
// give their own.
type Clock = engine.Clock

type wallClock struct{}

func (wallClock) Now() time.Time                  { return time.Now() }
func (wallClock) At(t time.Time) <-chan time.Time { return time.After(time.Until(t)) }

// Options are the settings of a run that are not flags.
type Options struct {
	Clock Clock
	// Stop, when closed, stops the run gracefully: every worker closes the
	// same epoch, it is committed, and Run returns an *InterruptedError.
	Stop <-chan struct{}
	// Out receives --recovery-plan output and notices (default io.Discard).
	Out io.Writer
	// MaxOutstanding overrides the engine's flow-control limit.
	MaxOutstanding int64
	// MaxUncommitted overrides DefaultMaxUncommitted when > 0.
	MaxUncommitted int
	// APIListener serves the API endpoints (see package api) on a listener
	// the caller opened, instead of listening on cfg.APIAddr.
	APIListener net.Listener
	// Logger receives the run's log lines (nil: none); see
	// docs/operations.md for what each means.
	Logger *slog.Logger
	// Progress, when set, receives a status line redrawn twice a second
	// (--progress; the caller checks it is a terminal).
	Progress io.Writer
	// Gatherer adds the user's metrics to /metrics (default: Prometheus's
	// default registry).
	Gatherer prometheus.Gatherer
	// API is the operations server Run started for a group run
	// (cfg.Group): GroupRun attaches its view of the member to it. Run
	// sets it; callers leave it nil.
	API *api.Server
}

// DefaultMaxUncommitted is how many closed epochs a worker may have
// waiting to be committed before it stops closing epochs and reading input:
// one being written and one more, so that a store as fast as the epoch
// interval never holds the flow back, and a slower one bounds what waits in
// memory to two epochs of snapshot rows.
const DefaultMaxUncommitted = 2

// ErrInterrupted (set to runnel.ErrInterrupted by the root package at
// init) is wrapped by the error of a run stopped through
// Options.Stop.
var ErrInterrupted = errors.New("interrupted")

// InterruptedError says where a stopped run ended.
type InterruptedError struct {
	// Resume is the epoch the next run starts from; 0 when no recovery
	// directory was given (the next run starts from scratch).
	Resume engine.Epoch
	// Group is the application of a member of a consumer group (--group),
	// which resumes from the group's committed offsets and changelogs.
	Group string
}

// Error says the run stopped cleanly and where the next one resumes.
func (e *InterruptedError) Error() string {
	if e.Group != "" {
		return fmt.Sprintf("interrupted: stopped cleanly after committing the last epoch; group %s resumes from its committed offsets and changelogs", e.Group)
	}
	if e.Resume == 0 {
		return "interrupted: stopped cleanly; without -r the next run starts from the beginning"
	}
	return fmt.Sprintf("interrupted: stopped cleanly after committing epoch %d; the next run resumes from epoch %d", e.Resume-1, e.Resume)
}

// Unwrap returns ErrInterrupted.
func (e *InterruptedError) Unwrap() error { return ErrInterrupted }

// InterruptedAsHook, set by the root package, lets errors.As convert an
// InterruptedError to the public runnel.InterruptedError.
var InterruptedAsHook func(e *InterruptedError, target any) bool

// As implements errors.As for the public type.
func (e *InterruptedError) As(target any) bool {
	return InterruptedAsHook != nil && InterruptedAsHook(e, target)
}

type run struct {
	flow    *plan.Dataflow
	cfg     config.Config
	opt     Options
	clock   Clock
	workers []*engine.Worker
	tr      *transport
	com     *committer
	ctx     context.Context
	cancel  context.CancelCauseFunc

	mu       sync.Mutex
	cond     *sync.Cond
	paused   []bool
	exited   []bool
	maxOpen  engine.Epoch
	freeze   chan struct{} // closed: pause
	stopAt   atomic.Uint64
	stopNow  chan struct{} // closed: stopAt is set
	stopping bool
}

// errGroupNotBuilt is returned for a Config with Group set in a binary
// that does not import the Kafka connector (which brings group mode in).
var errGroupNotBuilt = errors.New("group mode needs the Kafka connector: the flow's inputs must be Kafka sources (github.com/runnel-dev/runnel/connector/kafka)")

// GroupRun runs a flow as a member of a Kafka consumer group (--group).
// internal/group sets it when it is linked in (the Kafka connector
// imports it), so that binaries without Kafka link no Kafka client.
var GroupRun func(ctx context.Context, flow *plan.Dataflow, cfg config.Config, opt Options) error

// serveAPI starts the operations server on opt.APIListener or
// cfg.APIAddr, or returns nil when there is neither. It listens before
// anything is read, so that an address in use stops the run before it
// starts.
func serveAPI(cfg config.Config, opt Options) (*api.Server, error) {
	ln := opt.APIListener
	if ln == nil && cfg.APIAddr != "" && !cfg.RecoveryPlan {
		var err error
		if ln, err = net.Listen("tcp", cfg.APIAddr); err != nil {
			return nil, fmt.Errorf("--api-addr %s: cannot serve the API there: %w", cfg.APIAddr, err)
		}
	}
	if ln == nil {
		return nil, nil
	}
	return api.Start(ln, api.Options{Pprof: cfg.APIPprof, Gatherer: opt.Gatherer}), nil
}

// Run runs flow to the end of its input, to an error, or to a stop.
func Run(ctx context.Context, flow *plan.Dataflow, cfg config.Config, opt Options) (err error) {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	log := opt.Logger.With("flow", flow.ID())
	if !cfg.RecoveryPlan && cfg.FromRecovery == "" {
		defer func() { logEnd(log, err) }()
	}
	if err := flow.Validate(); err != nil {
		return fmt.Errorf("dataflow %q: %w", flow.ID(), err)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	if cfg.Group != "" {
		if GroupRun == nil {
			return fmt.Errorf("--group %s: %w", cfg.Group, errGroupNotBuilt)
		}
		if cfg.FromRecovery != "" {
			return GroupRun(ctx, flow, cfg, opt) // seeds the group and returns
		}
		srv, aerr := serveAPI(cfg, opt)
		if aerr != nil {
			return aerr
		}
		attrs := []any{"group", cfg.Group, "brokers", strings.Join(cfg.Brokers, ","),
			"workers", cfg.WorkersPerProcess, "epoch_interval", cfg.SnapshotInterval.String()}
		if srv != nil {
			opt.API = srv
			opt.Logger = slog.New(srv.EventHandler(opt.Logger.Handler()))
			log = opt.Logger.With("flow", flow.ID())
			attrs = append(attrs, "api", "http://"+srv.Addr().String()+"/")
			defer func() {
				if cerr := srv.Close(); cerr != nil && err == nil {
					err = fmt.Errorf("--api-addr: %w", cerr)
				}
			}()
		}
		log.Info("flow started", attrs...)
		return GroupRun(ctx, flow, cfg, opt)
	}
	var checkErrs []error
	current := map[string]recovery.StepState{}
	var migrations []recovery.Migration
	for _, st := range flow.Steps() {
		if st.State == nil {
			continue
		}
		cur := recovery.StepState{Type: st.State.Type}
		if st.State.Shape != nil {
			cur.Shape = st.State.Shape()
		}
		current[st.ID] = cur
		if m := st.State.Migration; m != nil {
			migrations = append(migrations, recovery.Migration{Step: st.ID,
				From: recovery.StepState{Type: m.FromType, Shape: m.FromShape}, Name: m.Name})
		}
		if err := st.State.Check(); err != nil {
			checkErrs = append(checkErrs, fmt.Errorf("step %s: %w", st.ID, err))
		}
	}
	if err := errors.Join(checkErrs...); err != nil {
		return err
	}
	if opt.Clock == nil {
		opt.Clock = wallClock{}
	}
	// Listen before anything is read, so that an address in use stops the
	// run before it starts.
	srv, err := serveAPI(cfg, opt)
	if err != nil {
		return err
	}
	if srv != nil {
		log = slog.New(srv.EventHandler(log.Handler()))
		defer func() {
			if cerr := srv.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("--api-addr: %w", cerr)
			}
		}()
	}
	if opt.Out == nil {
		opt.Out = io.Discard
	}
	// Set-up (listing partitions, loading recovered state, building every
	// worker's steps) can take long with many workers or much state; a stop
	// requested meanwhile ends it at the next check instead of waiting.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	setupDone := make(chan struct{})
	var setupWG sync.WaitGroup
	if opt.Stop != nil {
		setupWG.Go(func() {
			select {
			case <-opt.Stop:
				cancel(errStoppedInSetup)
			case <-setupDone:
			}
		})
	}
	endSetup := sync.OnceFunc(func() { close(setupDone); setupWG.Wait() })
	defer endSetup()

	W := cfg.WorkersPerProcess
	var parts map[string]*engine.Parts
	r := &run{flow: flow, cfg: cfg, opt: opt, clock: opt.Clock,
		paused: make([]bool, W), exited: make([]bool, W),
		freeze: make(chan struct{}), stopNow: make(chan struct{})}
	r.cond = sync.NewCond(&r.mu)
	limit := opt.MaxOutstanding
	if limit <= 0 {
		limit = engine.DefaultMaxOutstanding
	}
	r.tr = newTransport(W, limit)
	maxUncommitted := opt.MaxUncommitted
	if maxUncommitted <= 0 {
		maxUncommitted = DefaultMaxUncommitted
	}

	start := engine.Epoch(1)
	resume := make([]map[string][][]engine.StateRow, W)
	for i := range resume {
		resume[i] = map[string][][]engine.StateRow{}
	}
	loading := make([]map[string]*rowList, W) // resume's rows as Load hands them out
	for i := range loading {
		loading[i] = map[string]*rowList{}
	}
	var store *recovery.Store
	var execution int
	begin := func() error { return nil } // records the execution in the store
	rewrite := map[string]bool{}         // migrated steps: every key is written in the first epoch
	if cfg.RecoveryDir != "" {
		// --recovery-plan only reads: it must not change a byte, and works
		// on a read-only directory.
		open := recovery.Open
		if cfg.RecoveryPlan {
			open = recovery.OpenReadOnly
		}
		store, err = open(cfg.RecoveryDir)
		if err != nil {
			return err
		}
		defer func() {
			if cerr := store.Close(); cerr != nil && err == nil {
				err = cerr
			}
		}()
		if !cfg.RecoveryPlan {
			if err := store.Lock(); err != nil {
				return err
			}
		}
		if id := store.FlowID(); id != "" && id != flow.ID() {
			return fmt.Errorf("recovery directory %s: %w: it holds dataflow %q, this is %q; use another directory",
				cfg.RecoveryDir, recovery.ErrFlowMismatch, id, flow.ID())
		}
		stored, err := store.StepTypes()
		if err != nil {
			return err
		}
		p := recovery.MakePlan(stored, current, cfg.DropState, migrations...)
		convert := map[string]*plan.Migration{}
		for _, st := range flow.Steps() {
			if st.State != nil && p.Migrating(st.ID) {
				convert[st.ID] = st.State.Migration
			}
		}
		if cfg.RecoveryPlan {
			v, err := store.Check()
			if err != nil {
				return err
			}
			if verr := v.Err(); verr != nil {
				fmt.Fprintf(opt.Out, "recovery directory %s: the next run is REFUSED:\n", cfg.RecoveryDir)
				for _, pr := range v.Problems {
					fmt.Fprintf(opt.Out, "  %v: %s\n", pr.Err, pr.Text)
				}
				fmt.Fprint(opt.Out, p.String())
				return errors.Join(verr, p.Err())
			}
			var merr error
			if len(p.Migrated) > 0 && p.Err() == nil {
				// Convert every key as the run would, writing nothing, so
				// that the plan shows how many convert, or which fails.
				merr = migrateAll(store, v.Resume.Epoch, p, convert, func(string, string, []byte) error { return nil })
				if merr != nil {
					merr = fmt.Errorf("recovery directory %s: resume from epoch %d: %w", cfg.RecoveryDir, v.Resume.Epoch, merr)
					fmt.Fprintf(opt.Out, "recovery directory %s: the next run is REFUSED: a state migration fails\n", cfg.RecoveryDir)
				}
			}
			if merr == nil {
				fmt.Fprintf(opt.Out, "recovery directory %s: the next run resumes at epoch %d\n", cfg.RecoveryDir, v.Resume.Epoch)
			}
			fmt.Fprint(opt.Out, p.String())
			return errors.Join(p.Err(), merr)
		}
		// Everything is read, and every migration converted, before Begin
		// writes anything: a step whose state does not load or convert
		// leaves the directory as it was.
		if err := p.Err(); err != nil {
			return fmt.Errorf("recovery directory %s: %w", cfg.RecoveryDir, err)
		}
		v, err := store.Check()
		if err != nil {
			return fmt.Errorf("recovery directory %s: %w", cfg.RecoveryDir, err)
		}
		if err := v.Err(); err != nil {
			return fmt.Errorf("recovery directory %s: %w", cfg.RecoveryDir, err)
		}
		start = engine.Epoch(v.Resume.Epoch)
		if parts, err = listParts(ctx, flow); err != nil {
			return setupErr(ctx, err, start)
		}
		routes := map[string]*plan.State{}
		for _, st := range flow.Steps() {
			if st.State != nil {
				routes[st.ID] = st.State
			}
		}
		loaded := 0
		err = migrateAll(store, start, p, convert, func(step, key string, value []byte) error {
			st, ok := routes[step]
			if !ok {
				return fmt.Errorf("recovery data holds state for step %s, which is not in the flow", step)
			}
			if loaded++; loaded%4096 == 0 && ctx.Err() != nil {
				return context.Cause(ctx)
			}
			w := 0
			if W > 1 { // with one worker, the step checks each key as it loads it
				var rerr error
				if p := parts[step]; p != nil {
					w, rerr = p.Owner(key, W)
				} else {
					w, rerr = st.Route(key, W)
				}
				if rerr != nil {
					return fmt.Errorf("step %s, key %q: %w; if the step changed on purpose, run once with --drop-state %s to discard its recovered state", step, key, rerr, step)
				}
			}
			l := loading[w][step]
			if l == nil {
				l = &rowList{}
				loading[w][step] = l
			}
			l.add(engine.StateRow{Key: key, Value: value})
			return nil
		})
		if err != nil {
			return setupErr(ctx, fmt.Errorf("recovery directory %s: resume from epoch %d: %w", cfg.RecoveryDir, start, err), start)
		}
		for w, steps := range loading {
			for step, l := range steps {
				resume[w][step] = l.blocks()
				delete(steps, step) // its blocks can go now
			}
		}
		for _, m := range p.Migrated {
			rewrite[m.Step] = true
		}
		// Begin comes after every step is built (below): building decodes
		// the recovered state, and a value that does not decode must leave
		// the directory as it was.
		execution = v.Resume.Execution
		begin = func() error {
			res, err := store.Begin(flow.ID(), W, p)
			if err != nil {
				return fmt.Errorf("recovery directory %s: %w", cfg.RecoveryDir, err)
			}
			if res.Epoch != start || res.Execution != execution {
				return fmt.Errorf("recovery directory %s: resume moved from epoch %d (execution %d) to epoch %d (execution %d) while it was being read; was it changed by hand?",
					cfg.RecoveryDir, start, execution, res.Epoch, res.Execution)
			}
			if len(p.Dropped) > 0 {
				log.Warn("dropped the stored state of steps on request (--drop-state)", "steps", p.Dropped)
			}
			for _, m := range p.Migrated {
				log.Info("migrated the stored state of a step", "step", m.Step, "keys", m.Keys,
					"from", m.Stored.Type, "to", m.Current.Type, "epoch", start)
			}
			return nil
		}
	} else if cfg.RecoveryPlan {
		return fmt.Errorf("--recovery-plan needs -r")
	} else if parts, err = listParts(ctx, flow); err != nil {
		return setupErr(ctx, err, 0)
	}

	r.ctx, r.cancel = ctx, cancel
	var stopResume engine.Epoch // where a run stopped during set-up resumes
	if store != nil {
		stopResume = start
	}
	keep := uint64(0)
	if cfg.BackupInterval > 0 {
		keep = uint64(math.Ceil(float64(cfg.BackupInterval) / float64(cfg.SnapshotInterval)))
	}
	r.com = newCommitter(W, start, store, execution, keep, cancel)
	r.com.log = log
	r.com.durable.Store(start - 1)
	r.com.beforeWrite = testBeforeWrite
	r.com.notify = func() {
		for _, b := range r.tr.boxes {
			b.signal()
		}
	}
	var view *api.Run
	if srv != nil || opt.Progress != nil {
		view = &api.Run{Graph: flow.Graph(), Start: time.Now(), InFlight: r.tr.Outstanding, Interval: cfg.SnapshotInterval}
		if store != nil {
			view.Commits = api.NewCommits()
			view.Commits.Epoch.Store(start - 1)
			r.com.stats = view.Commits
		}
	}

	// Build every worker's steps before starting any, so a build error
	// (a source that cannot open, recovered state that does not decode)
	// stops the run before anything is read.
	var buildErr error
	shared := &engine.Shared{}
	for i := range W {
		if ctx.Err() != nil {
			buildErr = context.Cause(ctx)
			break
		}
		var stats *engine.Stats
		if view != nil {
			base := time.Now()
			stats = engine.NewStats(func() time.Duration { return time.Since(base) })
			view.Workers = append(view.Workers, stats)
		}
		w := engine.NewWorker(engine.Config{
			Index: i, Workers: W, Clock: r.clock, Transport: r.tr, Committer: r.com,
			EpochInterval: cfg.SnapshotInterval, StartEpoch: start,
			Snapshots: store != nil, Resume: resume[i], MaxOutstanding: limit, Shared: shared,
			Stats: stats, MaxUncommitted: maxUncommitted,
			Parts: parts, Context: ctx, Rewrite: rewrite,
		})
		r.workers = append(r.workers, w)
		prog := engine.NewProgram()
		for idx, st := range flow.Steps() {
			if err := w.AddStep(prog, idx, st.ID, st.Inputs, st.Terminal(), st.Build); err != nil {
				buildErr = err
				break
			}
		}
		if buildErr != nil {
			break
		}
	}
	resume = nil
	if buildErr != nil {
		return errors.Join(setupErr(ctx, buildErr, stopResume), r.closeAll())
	}
	if err := begin(); err != nil {
		return errors.Join(err, r.closeAll())
	}
	endSetup()
	select {
	case <-opt.Stop: // nil without a stop channel: never ready
		cancel(errStoppedInSetup) // nothing was read yet
	default:
	}
	if ctx.Err() != nil { // a stop or an abort that came as set-up ended
		return errors.Join(setupErr(ctx, context.Cause(ctx), stopResume), r.closeAll())
	}
	// Only now that every step is built does the committer's writer start:
	// a failed build leaves no goroutine behind.
	r.com.start()
	if srv != nil {
		srv.Attach(view) // every step is built: the counters are complete
	}
	if opt.Progress != nil {
		stopProgress := make(chan struct{})
		var progress sync.WaitGroup
		progress.Go(func() { api.Progress(opt.Progress, view, stopProgress) })
		defer func() {
			close(stopProgress)
			progress.Wait()
		}()
	}
	attrs := []any{"workers", W, "epoch_interval", cfg.SnapshotInterval.String()}
	if store != nil {
		attrs = append(attrs, "recovery_dir", cfg.RecoveryDir, "resume_epoch", start, "execution", execution)
	} else {
		attrs = append(attrs, "recovery_dir", "")
	}
	if srv != nil {
		attrs = append(attrs, "api", "http://"+srv.Addr().String()+"/")
	}
	log.Info("flow started", attrs...)

	var wg sync.WaitGroup
	errs := make([]error, W)
	for i := range W {
		wg.Go(func() {
			errs[i] = r.loop(i)
			r.workers[i].Sample()
			r.mu.Lock()
			r.exited[i] = true
			r.cond.Broadcast()
			r.mu.Unlock()
			if errs[i] != nil {
				cancel(errs[i])
			}
		})
	}
	stopDone := make(chan struct{})
	var stopWG sync.WaitGroup
	if opt.Stop != nil {
		stopWG.Go(func() { r.watchStop(stopDone) })
	}
	wg.Wait()
	close(stopDone)
	stopWG.Wait()
	comErr := r.com.close(ctx)
	var commitErr error
	if comErr == nil && context.Cause(ctx) == nil {
		// The workers' goroutines have ended: tell two-phase sinks about
		// the last durable epoch (end of input or a clean stop) here,
		// before they are closed.
		last := r.com.committedEpoch()
		for _, w := range r.workers {
			e := last
			if w.Done() {
				e = engine.EOF // also what was emitted after the last barrier
			}
			if err := w.Committed(e); err != nil {
				commitErr = err
				break
			}
		}
	}
	closeErr := r.closeAll()

	var first error
	for _, e := range errs {
		if e != nil {
			first = e
			break
		}
	}
	switch {
	case first != nil:
		return errors.Join(first, closeErr)
	case comErr != nil:
		return errors.Join(comErr, closeErr)
	case commitErr != nil:
		return errors.Join(commitErr, closeErr)
	case context.Cause(ctx) != nil && ctx.Err() != nil:
		return errors.Join(fmt.Errorf("aborted: %w", context.Cause(ctx)), closeErr)
	case closeErr != nil:
		return closeErr
	}
	if r.stopping && !r.allDone() {
		stopped := &InterruptedError{}
		if store != nil {
			stopped.Resume = r.com.committedEpoch() + 1
		}
		return stopped
	}
	return nil
}

// rowList collects the recovered rows of one step on one worker in blocks
// that double up to maxRowBlock: a slice grown by append would allocate
// about five times its final size, and copy every row several times, on
// its way to a million rows. The step reads the blocks as they are.
type rowList struct {
	full [][]engine.StateRow
	cur  []engine.StateRow
}

const (
	minRowBlock = 64
	maxRowBlock = 16 << 10
)

func (l *rowList) add(r engine.StateRow) {
	if len(l.cur) == cap(l.cur) {
		size := minRowBlock
		if l.cur != nil {
			l.full = append(l.full, l.cur)
			size = min(2*cap(l.cur), maxRowBlock)
		}
		l.cur = make([]engine.StateRow, 0, size)
	}
	l.cur = append(l.cur, r)
}

// blocks is every row added, in the order they were added.
func (l *rowList) blocks() [][]engine.StateRow {
	if len(l.cur) == 0 {
		return l.full
	}
	return append(l.full, l.cur)
}

// migrateAll loads the state to resume from before epoch and hands fn each
// row, except the rows of steps the plan drops; the rows of steps it
// migrates are converted first, and their count is recorded in p.Migrated.
// A conversion that fails stops it with an error naming the step and key.
func migrateAll(store *recovery.Store, epoch engine.Epoch, p recovery.Plan, convert map[string]*plan.Migration,
	fn func(step, key string, value []byte) error) error {
	dropped := map[string]bool{}
	for _, d := range p.Dropped {
		dropped[d] = true
	}
	counts := map[string]int{}
	// The dropped steps' rows are not even read: a damaged batch of a
	// step --drop-state discards must not stop the run.
	err := store.LoadExcept(epoch, p.Dropped, func(step, key string, value []byte) error {
		if dropped[step] {
			return nil // Begin deletes them
		}
		if m := convert[step]; m != nil {
			v, err := m.Convert(value)
			if err != nil {
				return fmt.Errorf("state migration from %s to the step's current type failed: %w", m.FromType, err)
			}
			value = v
			counts[step]++
		}
		return fn(step, key, value)
	})
	if err != nil {
		return err // a count of the keys before the failure would mislead
	}
	for i := range p.Migrated {
		p.Migrated[i].Keys = counts[p.Migrated[i].Step]
	}
	return nil
}

// logEnd logs how the run ended: finished, stopped, or failed (with the
// step, worker and key or partition of a step's failure as attributes).
func logEnd(log *slog.Logger, err error) {
	var stopped *InterruptedError
	var se *engine.StepError
	switch {
	case err == nil:
		log.Info("flow finished: the input ended")
	case errors.As(err, &stopped) && stopped.Group != "":
		log.Warn("flow stopped", "group", stopped.Group, "detail", err.Error())
	case errors.As(err, &stopped):
		log.Warn("flow stopped", "resume_epoch", stopped.Resume, "detail", err.Error())
	case errors.As(err, &se):
		attrs := []any{"step", se.Step, "worker", se.Worker}
		if se.Key != "" {
			attrs = append(attrs, "key", se.Key)
		}
		if se.Partition != "" {
			attrs = append(attrs, "input", se.Input, "partition", se.Partition, "position", se.Position)
		}
		if se.Partition != "" {
			attrs = append(attrs, "input", se.Input, "partition", se.Partition, "position", se.Position)
		}
		log.Error("flow failed", append(attrs, "err", err.Error())...)
		if se.Stack != nil {
			// The message is one line; the panic's stack is for debugging.
			log.Debug("stack of the panic", "step", se.Step, "worker", se.Worker, "stack", string(se.Stack))
		}
	default:
		log.Error("flow failed", "err", err.Error())
	}
}

func (r *run) closeAll() error {
	var errs []error
	for _, w := range r.workers {
		errs = append(errs, w.Close())
	}
	return errors.Join(errs...)
}

// loop is one worker's goroutine.
func (r *run) loop(i int) error {
	w := r.workers[i]
	box := r.tr.boxes[i]
	var buf []engine.Message
	paused, stopped := false, false
	// Committed also lifts the worker's backpressure (MaxUncommitted)
	// as epochs become durable, so it is called whether or not a sink
	// has a commit hook; it is cheap when nothing changed.
	for {
		if r.ctx.Err() != nil {
			return nil
		}
		if err := w.Committed(r.com.durable.Load()); err != nil {
			return err
		}
		if !paused {
			select {
			case <-r.freeze:
				w.Pause()
				paused = true
				r.mu.Lock()
				r.paused[i] = true
				r.maxOpen = max(r.maxOpen, w.Epoch())
				r.cond.Broadcast()
				r.mu.Unlock()
			default:
			}
		}
		if paused && !stopped {
			select {
			case <-r.stopNow:
				w.StopAt(r.stopAt.Load())
				stopped = true
			default:
			}
		}
		msgs := box.take(buf)
		if len(msgs) > 0 {
			if err := w.Deliver(msgs); err != nil {
				return err
			}
			clear(msgs)
		}
		buf = msgs
		progress, err := w.Step()
		if err != nil {
			return err
		}
		if w.Done() || w.Stopped() {
			return nil
		}
		if progress || len(msgs) > 0 {
			continue
		}
		var timer <-chan time.Time
		if t, ok := w.Deadline(); ok {
			if !r.clock.Now().Before(t) {
				continue
			}
			timer = r.clock.At(t)
		}
		freeze, stopNow := r.freeze, r.stopNow
		if paused {
			freeze = nil
		}
		if stopped || !paused {
			stopNow = nil
		}
		select {
		case <-box.wake:
		case <-timer:
		case <-freeze:
		case <-stopNow:
		case <-r.ctx.Done():
		}
	}
}

// watchStop runs the stop protocol when Options.Stop closes: pause every
// worker, pick the highest open epoch, and have every worker close it.
func (r *run) watchStop(done <-chan struct{}) {
	select {
	case <-r.opt.Stop:
	case <-done:
		return
	}
	r.mu.Lock()
	r.stopping = true
	close(r.freeze)
	for !r.allPausedOrExited() && r.ctx.Err() == nil {
		r.cond.Wait()
	}
	at := r.maxOpen
	r.mu.Unlock()
	if at == 0 {
		at = 1
	}
	r.stopAt.Store(at)
	close(r.stopNow)
}

// allDone reports whether every worker reached the end of its input: a
// stop that came too late to stop anything leaves a run that completed.
func (r *run) allDone() bool {
	for _, w := range r.workers {
		if !w.Done() {
			return false
		}
	}
	return true
}

func (r *run) allPausedOrExited() bool {
	for i := range r.paused {
		if !r.paused[i] && !r.exited[i] {
			return false
		}
	}
	return true
}

// testBeforeWrite is handed to every run's committer (see
// committer.beforeWrite); only tests set it.
var testBeforeWrite func(epochs int)

// errStoppedInSetup is the cause of a run stopped before it started.
var errStoppedInSetup = errors.New("stopped during set-up")

// setupErr turns the error of a set-up cut short by a stop into an
// *InterruptedError (nothing was read, so the next run resumes where this
// one would have started), and one cut short by ctx into an abort.
func setupErr(ctx context.Context, err error, start engine.Epoch) error {
	cause := context.Cause(ctx)
	switch {
	case cause == nil:
		return err
	case errors.Is(cause, errStoppedInSetup):
		return &InterruptedError{Resume: start}
	default:
		return fmt.Errorf("aborted during set-up: %w", cause)
	}
}

// listParts lists the partitions of every partitioned source and sink,
// once for the whole run: the same listing routes recovered positions and
// is handed to every worker.
func listParts(ctx context.Context, flow *plan.Dataflow) (map[string]*engine.Parts, error) {
	parts := map[string]*engine.Parts{}
	for _, st := range flow.Steps() {
		if st.State == nil || st.State.ListParts == nil {
			continue
		}
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		listed, err := callListParts(ctx, st)
		if err == nil {
			parts[st.ID], err = engine.NewParts(listed)
		}
		if err != nil {
			return nil, fmt.Errorf("step %s: list partitions: %w", st.ID, err)
		}
	}
	return parts, nil
}

func callListParts(ctx context.Context, st *plan.Step) (listed []string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = engine.NewPanicError(r)
		}
	}()
	return st.State.ListParts(ctx)
}
