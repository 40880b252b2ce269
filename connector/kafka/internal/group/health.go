package group

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// BrokerHealth is a kgo hook that watches connection attempts: when every
// attempt has failed for longer than a limit, Check reports it, so that a
// source or a member fails with the broker's name instead of waiting
// forever (franz-go retries without end).
type BrokerHealth struct {
	mu           sync.Mutex
	failingSince time.Time
	lastErr      error
	lastAddr     string
}

// OnBrokerConnect implements kgo.HookBrokerConnect.
func (h *BrokerHealth) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		h.failingSince = time.Time{}
		return
	}
	if h.failingSince.IsZero() {
		h.failingSince = time.Now()
	}
	h.lastErr = err
	h.lastAddr = net.JoinHostPort(meta.Host, strconv.Itoa(int(meta.Port)))
}

// Check returns an error once every connection attempt has failed for
// longer than timeout.
func (h *BrokerHealth) Check(timeout time.Duration, brokers []string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failingSince.IsZero() || time.Since(h.failingSince) < timeout {
		return nil
	}
	return fmt.Errorf("kafka: broker %s unreachable for %v (seed brokers %s): %w",
		h.lastAddr, time.Since(h.failingSince).Round(time.Second), strings.Join(slices.Clone(brokers), ","), h.lastErr)
}
