// Package poll makes a source of a function called at an interval, like
// Bytewax's SimplePollingSource: an HTTP endpoint, a database query, a
// directory listing, anything that answers "what is new?".
//
// NewSource calls its function every interval and keeps no position (each
// run polls the world as it is then). NewResumableSource hands the function
// the position its last call returned (an ID, a timestamp, a cursor) and
// snapshots it with the epoch, so a resumed run asks for what came after
// the last committed epoch: exactly-once input, as long as the function
// returns the same items for the same position.
//
// Time is the run's clock (runnel.WithClock), never the wall clock
// directly, so a test drives a polling source with a manual clock.
//
// # Usage
//
//	// Poll an endpoint every 30 s for events after the last seen ID.
//	src := poll.NewResumableSource(30*time.Second,
//		func(lastID int64) ([]Event, int64, error) {
//			events, err := fetchSince(lastID)
//			if err != nil {
//				return nil, lastID, poll.RetryAfter(5 * time.Second) // try again sooner
//			}
//			if len(events) > 0 {
//				lastID = events[len(events)-1].ID
//			}
//			return events, lastID, nil
//		})
//	events := op.Input("events", flow, src)
//
// The function runs on the worker that owns the source's one partition
// ("poll"), and that worker runs nothing else while it waits: keep a poll
// short (give your HTTP client a timeout shorter than the snapshot
// interval), or return RetryAfter instead of waiting.
package poll

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/runnel-dev/runnel"
)

// Partition is the name of a polling source's one partition, under which
// NewResumableSource's position is stored.
const Partition = "poll"

// RetryError asks the source to call the function again after After
// instead of the interval. Make one with RetryAfter.
type RetryError struct{ After time.Duration }

// Error says when the source will call the function again.
func (e *RetryError) Error() string { return fmt.Sprintf("poll: retry after %v", e.After) }

// RetryAfter returns the error a poll function returns (alone or wrapped)
// to be called again after d rather than after the interval, to back off
// from a failing endpoint or to come back sooner when more is expected,
// as Bytewax's SimplePollingSource.Retry. The items and position returned
// with it are used as usual (normally none and the unchanged position). A
// d below zero counts as zero.
func RetryAfter(d time.Duration) error { return &RetryError{After: max(d, 0)} }

// Opt configures a polling source. The interface is sealed; options are
// made by this package's functions.
type Opt interface{ apply(*config) }

type config struct {
	align   time.Time
	aligned bool
}

type optFunc func(*config)

func (f optFunc) apply(c *config) { f(c) }

// AlignTo makes polls happen at t + k·interval (k any integer), the first
// one at the first such instant not before the run starts, so that, for
// example, AlignTo(midnight) with an hourly interval polls on the hour.
// Without it, the first poll is at once and each next one an interval
// after the previous one.
func AlignTo(t time.Time) Opt {
	return optFunc(func(c *config) { c.align, c.aligned = t, true })
}

// NewSource calls poll at once and then every interval, and emits the items
// it returns, in order, on one worker. It keeps no position: a resumed run
// starts polling afresh, so it suits sources that report the current state
// of something; use NewResumableSource to continue where the last
// committed epoch ended.
//
// poll returning io.EOF (alone or wrapped) ends the input after the items
// returned with it; RetryAfter schedules the next call differently; any
// other error stops the run, naming the step. An interval below or equal
// to zero fails the run before it starts.
func NewSource[T any](interval time.Duration, poll func() ([]T, error), opts ...Opt) runnel.Source[T] {
	var pos struct{}
	src := &source[T, struct{}]{
		interval: interval,
		cfg:      newConfig(opts),
		poll: func(struct{}) ([]T, struct{}, error) {
			items, err := poll()
			return items, pos, err
		},
	}
	return runnel.DynamicInput[T](dynamicSource[T]{src})
}

// NewResumableSource calls poll with a position and emits the items it
// returns, on one worker. The first call gets S's zero value, each later
// one the position the previous call returned. The position is
// snapshotted with every epoch (it must be encodable: exported fields, no
// funcs or channels, checked before the run starts), and a resumed run's
// first call gets the position of the last committed epoch, so items
// after it are asked for again and nothing before it is (exactly-once
// input, given a poll that answers the same for the same position). The
// position is stored under the partition name "poll"; a run on any number
// of workers resumes it.
//
// Calls are made at once and then every interval (or see AlignTo); the
// schedule is not part of the position, so a resumed run polls at once.
// A run after one whose input ended (poll returned io.EOF) continues too:
// its first call gets the last position, as a file source continues a
// file that grew, so poll must answer io.EOF again when nothing is new.
// io.EOF, RetryAfter and other errors are handled as by NewSource; after
// an error other than those, the position stays where the last successful
// call left it.
func NewResumableSource[T, S any](interval time.Duration, poll func(pos S) ([]T, S, error), opts ...Opt) runnel.Source[T] {
	src := &source[T, S]{interval: interval, cfg: newConfig(opts), poll: poll}
	return runnel.PartitionedInput[T, S](src)
}

func newConfig(opts []Opt) config {
	var c config
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	return c
}

type source[T, S any] struct {
	interval time.Duration
	cfg      config
	poll     func(S) ([]T, S, error)
}

func (s *source[T, S]) ListParts(context.Context) ([]string, error) {
	return []string{Partition}, nil
}

func (s *source[T, S]) BuildPart(bc runnel.BuildContext, name string, resume *S) (runnel.StatefulSourcePartition[T, S], error) {
	if name != Partition {
		return nil, fmt.Errorf("poll: no partition %q", name)
	}
	if s.interval <= 0 {
		return nil, fmt.Errorf("poll: interval %v must be above zero", s.interval)
	}
	p := &part[T, S]{src: s, clock: bc.Clock}
	if resume != nil {
		p.pos = *resume
	}
	return p, nil
}

type dynamicSource[T any] struct{ src *source[T, struct{}] }

func (d dynamicSource[T]) Build(bc runnel.BuildContext) (runnel.SourcePartition[T], error) {
	if bc.Worker != 0 {
		return done[T]{}, nil
	}
	return d.src.BuildPart(bc, Partition, nil)
}

// done is the partition of the workers that do not poll.
type done[T any] struct{}

func (done[T]) NextBatch() ([]T, error) { return nil, io.EOF }
func (done[T]) NextAwake() time.Time    { return time.Time{} }
func (done[T]) Close() error            { return nil }

// part calls the function on the worker that owns the partition.
type part[T, S any] struct {
	src   *source[T, S]
	clock runnel.Clock
	pos   S
	next  time.Time // when to call next; zero before the first call
	ended bool
}

func (p *part[T, S]) NextBatch() ([]T, error) {
	if p.ended {
		return nil, io.EOF
	}
	now := p.clock.Now()
	if p.next.IsZero() {
		p.next = p.first(now)
	}
	if now.Before(p.next) {
		return nil, nil
	}
	items, pos, err := p.src.poll(p.pos)
	var retry *RetryError
	switch {
	case err == nil:
		p.next = p.after(now)
	case errors.As(err, &retry):
		p.next = now.Add(retry.After)
	case errors.Is(err, io.EOF):
		p.ended = true
	default:
		return nil, fmt.Errorf("poll: %w", err)
	}
	p.pos = pos
	if p.ended && len(items) == 0 {
		return nil, io.EOF
	}
	return items, nil
}

// first is the time of the first call of a run.
func (p *part[T, S]) first(now time.Time) time.Time {
	if !p.src.cfg.aligned {
		return now
	}
	return p.aligned(now, false)
}

// after is the time of the call after one made at now.
func (p *part[T, S]) after(now time.Time) time.Time {
	if !p.src.cfg.aligned {
		return now.Add(p.src.interval)
	}
	return p.aligned(now, true)
}

// aligned is the first instant align + k·interval at or after now (strictly
// after, if strict).
func (p *part[T, S]) aligned(now time.Time, strict bool) time.Time {
	iv := p.src.interval
	d := now.Sub(p.src.cfg.align)
	k := d / iv
	if d < 0 && d%iv != 0 {
		k-- // round towards minus infinity
	}
	t := p.src.cfg.align.Add(k * iv)
	if t.Before(now) || (strict && t.Equal(now)) {
		t = t.Add(iv)
	}
	return t
}

// NextAwake is the time of the next call.
func (p *part[T, S]) NextAwake() time.Time { return p.next }

// Snapshot is the position the last call returned.
func (p *part[T, S]) Snapshot() (S, error) { return p.pos, nil }

func (p *part[T, S]) Close() error { return nil }
