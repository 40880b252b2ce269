package api

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// ProgressEvery is how often the --progress line is redrawn.
const ProgressEvery = 500 * time.Millisecond

// Progress draws a one-line status of run r on w (a terminal) every
// ProgressEvery until stop is closed, then erases it. Each input shows its
// items per second and, where its partitions know their size, the percent
// read; then the open epoch and the last commit.
func Progress(w io.Writer, r *Run, stop <-chan struct{}) {
	t := time.NewTicker(ProgressEvery)
	defer t.Stop()
	last := take(r, time.Now())
	for {
		select {
		case <-stop:
			fmt.Fprint(w, "\r\x1b[K")
			return
		case now := <-t.C:
			cur := take(r, now)
			fmt.Fprint(w, "\r\x1b[K"+ProgressLine(r, last, cur, now))
			last = cur
		}
	}
}

// ProgressLine is the status line for the change from sample a to b.
func ProgressLine(r *Run, a, b sample, now time.Time) string {
	var parts []string
	dt := b.at.Sub(a.at).Seconds()
	for i, gs := range r.Graph.Steps {
		if !gs.Input {
			continue
		}
		p := gs.Name
		if dt > 0 {
			p += " " + human(float64(b.in[i]-a.in[i])/dt) + " items/s"
		}
		var done, total int64
		known := false
		for _, ws := range r.Workers {
			if i < len(ws.Steps) && ws.Steps[i] != nil && ws.Steps[i].SourceKnown.Load() {
				known = true
				done += ws.Steps[i].SourceDone.Load()
				total += ws.Steps[i].SourceTotal.Load()
			}
		}
		if known && total > 0 {
			p += fmt.Sprintf(" %.0f%%", 100*float64(done)/float64(total))
		}
		parts = append(parts, p)
	}
	var epoch uint64
	for _, ws := range r.Workers {
		epoch = max(epoch, ws.Epoch.Load())
	}
	parts = append(parts, fmt.Sprintf("epoch %d", epoch))
	if c := r.Commits; c != nil {
		if at := c.At.Load(); at != 0 {
			parts = append(parts, fmt.Sprintf("committed %d, %s ago", c.Epoch.Load(), now.Sub(time.Unix(0, at)).Round(100*time.Millisecond)))
		} else {
			parts = append(parts, "no commit yet")
		}
	}
	return strings.Join(parts, " · ")
}

// Sample takes the run's totals now, for ProgressLine.
func Sample(r *Run, now time.Time) sample { return take(r, now) }

func human(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}
