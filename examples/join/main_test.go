package main

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runnel-dev/runnel"
)

type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func TestJoin(t *testing.T) {
	want := "(1, ('alice', [3.5, 12.0]))\n(2, ('bob', None))\n(3, (None, [7.25]))\n"
	for _, w := range []int{1, 4} {
		var out lockedBuilder
		cfg := runnel.DefaultConfig()
		cfg.WorkersPerProcess = w
		cfg.SnapshotInterval = time.Hour
		if err := runnel.Run(context.Background(), joinFlow(&out), cfg); err != nil {
			t.Fatal(err)
		}
		if got := out.b.String(); got != want {
			t.Errorf("%d workers: got\n%s\nwant\n%s", w, got, want)
		}
	}
}
