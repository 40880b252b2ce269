package kafkadev

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStartCreateProduce(t *testing.T) {
	b, err := Start(Options{Topics: map[string]int32{"a": 3}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if len(b.Addrs()) != 1 || !strings.HasPrefix(b.Addrs()[0], "127.0.0.1:") {
		t.Errorf("Addrs = %v, want one 127.0.0.1 address", b.Addrs())
	}
	if err := b.CreateTopic("a", 3); err != nil {
		t.Errorf("creating an existing topic with the same partitions: %v", err)
	}
	if err := b.CreateTopic("a", 2); err == nil || !strings.Contains(err.Error(), "3 partitions") {
		t.Errorf("creating an existing topic with other partitions: %v", err)
	}
	if err := b.Produce("a", Record{Key: []byte("k"), Value: []byte("v")}); err != nil {
		t.Error(err)
	}
}

func TestBadOptions(t *testing.T) {
	for _, addr := range []string{"10.0.0.1:9092", "nohost", "127.0.0.1:99999"} {
		if b, err := Start(Options{Addr: addr}); err == nil {
			b.Close()
			t.Errorf("Start(%q) worked, want an error", addr)
		}
	}
	for _, s := range []string{"", ":3", "t:0", "t:x"} {
		if _, _, err := ParseTopic(s); err == nil {
			t.Errorf("ParseTopic(%q) worked", s)
		}
	}
	if name, n, err := ParseTopic("t:4"); name != "t" || n != 4 || err != nil {
		t.Errorf("ParseTopic(t:4) = %q %d %v", name, n, err)
	}
}

// TestGroupMinSessionTimeout: a group member asking for a 500ms session is
// refused by default (Kafka's minimum is 6s) and admitted when the broker's
// minimum is lowered.
func TestGroupMinSessionTimeout(t *testing.T) {
	join := func(min time.Duration) error {
		b, err := Start(Options{Topics: map[string]int32{"t": 1}, GroupMinSessionTimeout: min})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if err := b.Produce("t", Record{Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
		var joinErr error
		cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.ConsumerGroup("g"), kgo.ConsumeTopics("t"),
			kgo.SessionTimeout(500*time.Millisecond), kgo.HeartbeatInterval(100*time.Millisecond),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				return fmt.Errorf("no record and no error in 20s (last error %v)", joinErr)
			}
			if fs.NumRecords() > 0 {
				return nil
			}
			if err := fs.Err0(); err != nil {
				return err
			}
		}
	}
	if err := join(0); !errors.Is(err, kerr.InvalidSessionTimeout) {
		t.Errorf("default broker, 500ms session: %v, want INVALID_SESSION_TIMEOUT", err)
	}
	if err := join(100 * time.Millisecond); err != nil {
		t.Errorf("broker with a 100ms minimum, 500ms session: %v", err)
	}
	if b, err := Start(Options{GroupMinSessionTimeout: -time.Second}); err == nil {
		b.Close()
		t.Error("a negative GroupMinSessionTimeout was accepted")
	}
}
