package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/stdio"
)

const text = `To be, or not to be, that is the question:
Whether 'tis nobler in the mind to suffer
The slings and arrows of outrageous fortune,`

func TestWordcount(t *testing.T) {
	want := `("'tis", 1)
('and', 1)
('arrows', 1)
('be', 2)
('fortune', 1)
('in', 1)
('is', 1)
('mind', 1)
('nobler', 1)
('not', 1)
('of', 1)
('or', 1)
('outrageous', 1)
('question', 1)
('slings', 1)
('suffer', 1)
('that', 1)
('the', 3)
('to', 3)
('whether', 1)
`
	for _, w := range []int{1, 4} {
		var out strings.Builder // the stdio sink serializes writes; read after Run
		flow := wordcount(stdio.NewReaderSource(strings.NewReader(text)), &out)
		cfg := runnel.DefaultConfig()
		cfg.WorkersPerProcess = w
		cfg.SnapshotInterval = time.Hour
		if err := runnel.Run(context.Background(), flow, cfg); err != nil {
			t.Fatal(err)
		}
		if got := out.String(); got != want {
			t.Errorf("%d workers: got\n%s\nwant\n%s", w, got, want)
		}
	}
}
