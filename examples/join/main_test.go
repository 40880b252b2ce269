package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/runnel-dev/runnel"
)

func TestJoin(t *testing.T) {
	want := "(1, ('alice', [3.5, 12.0]))\n(2, ('bob', None))\n(3, (None, [7.25]))\n"
	for _, w := range []int{1, 4} {
		var out strings.Builder // the stdio sink serializes writes; read after Run
		cfg := runnel.DefaultConfig()
		cfg.WorkersPerProcess = w
		cfg.SnapshotInterval = time.Hour
		if err := runnel.Run(context.Background(), joinFlow(&out), cfg); err != nil {
			t.Fatal(err)
		}
		if got := out.String(); got != want {
			t.Errorf("%d workers: got\n%s\nwant\n%s", w, got, want)
		}
	}
}
