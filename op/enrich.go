package op

import (
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/engine"
	"github.com/runnel-dev/runnel/internal/plan"
	"github.com/runnel-dev/runnel/internal/pubapi"
)

// TTLCache is EnrichCached's per-worker cache: Get returns the cached
// value of a key, fetching it with the getter on a miss or when the cached
// value is older than the TTL. It is used only from the worker that owns
// it, so it needs no locking; it must not be kept after mapper returns.
type TTLCache[K comparable, V any] struct {
	get  func(K) V
	ttl  time.Duration
	now  time.Time
	vals map[K]cached[V]
}

type cached[V any] struct {
	at time.Time
	v  V
}

// Get returns the value for k, calling the getter when k is not cached or
// its value was fetched more than the TTL ago (by the worker's clock, read
// once per batch).
func (c *TTLCache[K, V]) Get(k K) V {
	if e, ok := c.vals[k]; ok && (c.ttl <= 0 || c.now.Sub(e.at) <= c.ttl) {
		return e.v
	}
	v := c.get(k)
	c.vals[k] = cached[V]{at: c.now, v: v}
	return v
}

// Remove forgets the cached value of k, so that the next Get fetches it.
func (c *TTLCache[K, V]) Remove(k K) { delete(c.vals, k) }

// Len is the number of cached keys.
func (c *TTLCache[K, V]) Len() int { return len(c.vals) }

// EnrichCached maps each item with mapper, which can look values up
// through a cache in front of getter (a database or service call). Each
// worker keeps its own cache; a value is fetched again when it is older
// than ttl by the worker's clock (runnel.WithClock in tests). A ttl of zero
// or less keeps values for the whole run. The cache has no size bound.
//
// It is commonly used for: joining a stream with slowly changing reference
// data pulled from outside the flow (a user's country, a product's price),
// as Bytewax's enrich_cached.
//
// The cache is not recovery state: a resumed run starts with empty caches,
// so results may differ across a resume if the external data changed. If
// the reference data can be pushed into the flow, a running Join with a
// second input avoids both cache misses and staleness.
//
// getter and mapper run on the worker goroutines; getter blocks the worker
// while it runs.
func EnrichCached[X any, K comparable, V, Y any](stepID string, up runnel.Stream[X], getter func(K) V, ttl time.Duration,
	mapper func(cache *TTLCache[K, V], item X) Y) runnel.Stream[Y] {
	st := &plan.Step{Kind: "enrich_cached", Outs: 1}
	st.Build = func(b *engine.Builder) error {
		cache := &TTLCache[K, V]{get: getter, ttl: ttl, vals: map[K]cached[V]{}}
		clock := b.Clock()
		n := &statelessNode[X, Y]{fn: func(in []X, out []Y) []Y {
			cache.now = clock.Now()
			for _, x := range in {
				out = append(out, mapper(cache, x))
			}
			return out
		}}
		n.out = engine.NewOutlet[Y](b, 0)
		engine.Connect(b, b.NewGate(n), 0, nil, n.handle)
		return nil
	}
	return add[Y](scopeOf(up), stepID, st, pubapi.Stream(up))
}
