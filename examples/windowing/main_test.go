package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/stdio"
	"github.com/runnel-dev/runnel/runneltest"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const want = `user0 window 0 [00:00:00, 00:00:30): 2 events
user0 window 1 [00:00:30, 00:01:00): 1 events
user0 window 2 [00:01:00, 00:01:30): 1 events
user0 window 3 [00:01:30, 00:02:00): 1 events
user0 window 4 [00:02:00, 00:02:30): 2 events
user0 window 5 [00:02:30, 00:03:00): 1 events
user0 window 6 [00:03:00, 00:03:30): 1 events
user0 window 7 [00:03:30, 00:04:00): 2 events
user0 window 8 [00:04:00, 00:04:30): 1 events
user0 window 9 [00:04:30, 00:05:00): 1 events
user1 window 0 [00:00:00, 00:00:30): 2 events
user1 window 1 [00:00:30, 00:01:00): 1 events
user1 window 2 [00:01:00, 00:01:30): 1 events
user1 window 3 [00:01:30, 00:02:00): 2 events
user1 window 5 [00:02:30, 00:03:00): 2 events
user1 window 6 [00:03:00, 00:03:30): 1 events
user1 window 7 [00:03:30, 00:04:00): 2 events
user1 window 8 [00:04:00, 00:04:30): 1 events
user2 window 0 [00:00:00, 00:00:30): 1 events
user2 window 1 [00:00:30, 00:01:00): 2 events
user2 window 2 [00:01:00, 00:01:30): 1 events
user2 window 3 [00:01:30, 00:02:00): 2 events
user2 window 4 [00:02:00, 00:02:30): 1 events
user2 window 5 [00:02:30, 00:03:00): 1 events
user2 window 6 [00:03:00, 00:03:30): 1 events
user2 window 7 [00:03:30, 00:04:00): 1 events
user2 window 8 [00:04:00, 00:04:30): 2 events
late: user0 event at 00:01:03, watermark 00:01:35
late: user1 event at 00:02:13, watermark 00:02:45
late: user2 event at 00:03:23, watermark 00:03:55
`

func TestRun(t *testing.T) {
	for _, workers := range []int{1, 3} {
		var b strings.Builder
		flow := windowing(stdio.NewWriterSink[string](&b))
		if err := runnel.Run(context.Background(), flow, runneltest.Config(workers, time.Hour, "")); err != nil {
			t.Fatal(err)
		}
		if b.String() != want {
			t.Errorf("%d workers: got\n%s\nwant\n%s", workers, b.String(), want)
		}
	}
}
