package group_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestMemberDroppedByTheCoordinator: while the group is idle, the
// coordinator answers one heartbeat with UNKNOWN_MEMBER_ID, as it does when
// a member missed its session timeout (a long pause, a slow restore on a
// loaded machine). The member learns it at its next poll, loses its
// partitions, joins again and goes on: every count is still exactly once,
// and both members stop cleanly at the end. (A member dropped in the middle
// of an epoch with records to commit is not covered: kgo's End then waits
// for the transaction timeout and the member fails, to be restarted.)
func TestMemberDroppedByTheCoordinator(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100*time.Millisecond),
		kfake.SeedTopics(4, "in"), kfake.SeedTopics(3, "out"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	brokers := c.ListenAddrs()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const half = 2000
	produce(t, brokers, "in", words(0, half)...)
	ms := []*member{
		startMember(ctx, t, countFlow(brokers), brokers, 2),
		startMember(ctx, t, countFlow(brokers), brokers, 2),
	}
	checkExactlyOnce(t, readCounts(t, brokers, half, 60*time.Second), half)
	var dropped atomic.Bool
	c.ControlKey(int16(kmsg.Heartbeat), func(req kmsg.Request) (kmsg.Response, error, bool) {
		hb := req.(*kmsg.HeartbeatRequest)
		if hb.Group != "app" {
			return nil, nil, false
		}
		resp := hb.ResponseKind().(*kmsg.HeartbeatResponse)
		resp.ErrorCode = kerr.UnknownMemberID.Code
		dropped.Store(true)
		return resp, nil, true
	})
	for start := time.Now(); !dropped.Load(); time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 30*time.Second {
			t.Fatal("no heartbeat of group app was answered with UNKNOWN_MEMBER_ID: the test tested nothing")
		}
	}
	produce(t, brokers, "in", words(half, 2*half)...)
	got := readCounts(t, brokers, 2*half, 90*time.Second)
	checkExactlyOnce(t, got, 2*half)
	var wg sync.WaitGroup
	for _, m := range ms {
		wg.Go(func() { m.end(t) })
	}
	wg.Wait()
}
