package group

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/runnel-dev/runnel/internal/engine"
	"github.com/runnel-dev/runnel/internal/runner"
)

// appRecord is what APP.meta holds: the flow the application runs, its
// number of key groups (fixed for the application's life) and the state
// type of each keyed step, so that a changelog is never read into a flow
// that did not write it.
type appRecord struct {
	Flow      string            `json:"flow"`
	KeyGroups int               `json:"key_groups"`
	States    map[string]string `json:"states"`
}

// fingerprint names the version of the flow: its steps, their wiring and
// their state types. Members of one group must run the same.
func (m *member) fingerprint() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n", m.flow.ID())
	for _, st := range m.flow.Steps() {
		fmt.Fprintf(h, "%s %s %v", st.ID, st.Kind, st.Inputs)
		if st.State != nil {
			fmt.Fprintf(h, " %s", m.stateType(st.ID))
		}
		fmt.Fprintln(h)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

func (m *member) stateType(id string) string {
	for _, st := range m.flow.Steps() {
		if st.ID == id && st.State != nil {
			t := st.State.Type
			if st.State.Shape != nil {
				t += " " + st.State.Shape()
			}
			return t
		}
	}
	return ""
}

// setup checks the input topics, decides the number of key groups,
// creates or checks the internal topics and the application record, and
// refuses to join a group whose members run another version of the flow.
func (m *member) setup(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	app := m.set.App
	brokers := strings.Join(m.set.Brokers, ",")
	td, err := m.adm.ListTopics(ctx, m.inputs...)
	if err != nil {
		return fmt.Errorf("group %s: list topics on brokers %s: %w", app, brokers, err)
	}
	most := 0
	for _, t := range m.inputs {
		d, ok := td[t]
		if !ok || d.Err != nil || len(d.Partitions) == 0 {
			return fmt.Errorf("group %s: input topic %q does not exist on brokers %s", app, t, brokers)
		}
		most = max(most, len(d.Partitions))
	}
	states := map[string]string{}
	for _, k := range m.keyed {
		states[k.id] = m.stateType(k.id)
	}
	meta := app + ".meta"
	if err := m.ensureTopic(ctx, meta, 1, true); err != nil {
		return err
	}
	rec, found, err := m.readApp(ctx, meta)
	if err != nil {
		return err
	}
	write := !found
	if found {
		switch {
		case rec.Flow != m.flow.ID():
			return fmt.Errorf("group %s: the application's topics were written by dataflow %q, this is %q (recorded in topic %s); use another --group for this flow",
				app, rec.Flow, m.flow.ID(), meta)
		case m.set.KeyGroups != 0 && m.set.KeyGroups != rec.KeyGroups:
			return fmt.Errorf("group %s: --key-groups %d, but the application has %d key groups (recorded in topic %s); the number is fixed for an application's life: "+
				"to change it, run the flow under a new --group, which starts from empty state (see docs/scaling.md)", app, m.set.KeyGroups, rec.KeyGroups, meta)
		}
		for step, typ := range rec.States {
			if cur, ok := states[step]; ok && cur != typ {
				return fmt.Errorf("group %s: step %s: its state type changed from %q to %q since the changelog %s.%s.changelog was written; "+
					"run the changed flow under a new --group (it starts from empty state); typed migrations (op.MigrateState) apply to recovery directories (-r) only", app, step, typ, cur, app, step)
			}
		}
		m.kg = rec.KeyGroups
		for step, typ := range states {
			if _, ok := rec.States[step]; !ok {
				rec.States[step] = typ
				write = true
			}
		}
	} else {
		m.kg = m.set.KeyGroups
		if m.kg == 0 {
			m.kg = most
		}
		rec = appRecord{Flow: m.flow.ID(), KeyGroups: m.kg, States: states}
	}
	for _, k := range m.keyed {
		if err := m.ensureTopic(ctx, k.repartition, m.kg, false); err != nil {
			return err
		}
		if err := m.ensureTopic(ctx, k.changelog, m.kg, true); err != nil {
			return err
		}
	}
	if write {
		b, _ := json.Marshal(rec)
		if err := m.base.ProduceSync(ctx, &kgo.Record{Topic: meta, Key: []byte("app"), Value: b}).FirstErr(); err != nil {
			return fmt.Errorf("group %s: record the application in topic %s: %w", app, meta, err)
		}
	}
	return m.checkVersions(ctx)
}

// ensureTopic creates topic with n partitions (compacted or not), or
// checks that it has them.
func (m *member) ensureTopic(ctx context.Context, topic string, n int, compact bool) error {
	app := m.set.App
	td, err := m.adm.ListTopics(ctx, topic)
	if err != nil {
		return fmt.Errorf("group %s: list topic %s: %w", app, topic, err)
	}
	if d, ok := td[topic]; ok && d.Err == nil && len(d.Partitions) > 0 {
		if len(d.Partitions) != n {
			return fmt.Errorf("group %s: internal topic %s has %d partitions, the application needs %d (one per key group); "+
				"Runnel never repartitions an internal topic: delete it only if its state may be lost, or run under a new --group", app, topic, len(d.Partitions), n)
		}
		if compact {
			rc, err := m.adm.DescribeTopicConfigs(ctx, topic)
			if err == nil {
				if c, err := rc.On(topic, nil); err == nil {
					for _, kv := range c.Configs {
						if kv.Key == "cleanup.policy" && kv.Value != nil && !strings.Contains(*kv.Value, "compact") {
							return fmt.Errorf("group %s: internal topic %s has cleanup.policy=%s; a changelog must be compacted (cleanup.policy=compact)", app, topic, *kv.Value)
						}
					}
				}
			}
		}
		return nil
	}
	var cfg map[string]*string
	if compact {
		c := "compact"
		cfg = map[string]*string{"cleanup.policy": &c}
	}
	resp, err := m.adm.CreateTopic(ctx, int32(n), -1, cfg, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !strings.Contains(err.Error(), "TOPIC_ALREADY_EXISTS") {
		return fmt.Errorf("group %s: create internal topic %s: %w", app, topic, err)
	}
	if err != nil { // another member created it meanwhile: check it
		return m.ensureTopic(ctx, topic, n, compact)
	}
	return nil
}

// readApp reads the newest application record.
func (m *member) readApp(ctx context.Context, topic string) (appRecord, bool, error) {
	var rec appRecord
	found := false
	var bad error
	_, err := m.readPartitions(ctx, topic, []int32{0}, func(r *kgo.Record) {
		var x appRecord
		if err := json.Unmarshal(r.Value, &x); err != nil {
			bad = fmt.Errorf("group %s: topic %s holds a record that is not a Runnel application record (offset %d): %w", m.set.App, topic, r.Offset, err)
			return
		}
		rec, found = x, true
	})
	if err == nil {
		err = bad
	}
	if rec.States == nil {
		rec.States = map[string]string{}
	}
	return rec, found, err
}

// readPartitions reads the committed records of partitions of topic from
// their start to their end, waiting first for open transactions on them
// to end, so that what a previous owner committed last is included.
func (m *member) readPartitions(ctx context.Context, topic string, parts []int32, fn func(*kgo.Record)) (int, error) {
	app := m.set.App
	ends := map[int32]int64{}
	deadline := time.Now().Add(2*m.set.TransactionTimeout + 5*time.Second)
	for {
		hw, err := m.adm.ListEndOffsets(ctx, topic)
		if err == nil {
			hw.Each(func(o kadm.ListedOffset) {
				if err == nil && o.Err != nil {
					err = o.Err
				}
			})
		}
		var lso kadm.ListedOffsets
		if err == nil {
			lso, err = m.adm.ListCommittedOffsets(ctx, topic)
		}
		if err != nil {
			if errors.Is(err, kerr.UnknownTopicOrPartition) && time.Now().Before(deadline) {
				// A topic just created is not known to every broker yet.
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return 0, fmt.Errorf("group %s: end offsets of %s: %w", app, topic, err)
		}
		stable := true
		for _, p := range parts {
			h, _ := hw.Lookup(topic, p)
			l, _ := lso.Lookup(topic, p)
			if l.Offset < h.Offset {
				stable = false
			}
			ends[p] = l.Offset
		}
		if stable {
			break
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("group %s: topic %s has a transaction open longer than the transaction timeout", app, topic)
		}
		select {
		case <-ctx.Done():
			return 0, context.Cause(ctx)
		case <-time.After(50 * time.Millisecond):
		}
	}
	starts, err := m.adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("group %s: start offsets of %s: %w", app, topic, err)
	}
	offsets := map[int32]kgo.Offset{}
	for _, p := range parts {
		s, _ := starts.Lookup(topic, p)
		if s.Offset < ends[p] {
			offsets[p] = kgo.NewOffset().At(s.Offset)
		}
	}
	if len(offsets) == 0 {
		return 0, nil
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(m.set.Brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords()}, m.set.ClientOpts...)...)
	if err != nil {
		return 0, fmt.Errorf("group %s: %w", app, err)
	}
	defer cl.Close()
	n := 0
	for len(offsets) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return n, context.Cause(ctx)
		}
		for _, fe := range fs.Errors() {
			return n, fmt.Errorf("group %s: read %s/%d: %w", app, fe.Topic, fe.Partition, fe.Err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if _, reading := offsets[r.Partition]; !reading || r.Offset >= ends[r.Partition] {
				return
			}
			if !r.Attrs.IsControl() {
				fn(r)
				n++
			}
			if r.Offset >= ends[r.Partition]-1 {
				delete(offsets, r.Partition)
			}
		})
	}
	return n, nil
}

// checkVersions refuses to join a group whose live members run another
// version of the flow (their client ids carry it).
func (m *member) checkVersions(ctx context.Context) error {
	mine := "runnel." + m.fingerprint()
	groups, err := m.adm.DescribeGroups(ctx, m.set.App)
	if err != nil {
		return fmt.Errorf("group %s: describe the group: %w", m.set.App, err)
	}
	for _, g := range groups {
		for _, mem := range g.Members {
			if strings.HasPrefix(mem.ClientID, "runnel.") && mem.ClientID != mine {
				return fmt.Errorf("group %s: member %s (host %s) runs another version of the flow (%s); this process runs dataflow %q version %s: "+
					"stop the members of the other version first, or run this one under another --group",
					m.set.App, mem.MemberID, mem.ClientHost, strings.TrimPrefix(mem.ClientID, "runnel."), m.flow.ID(), strings.TrimPrefix(mine, "runnel."))
			}
		}
	}
	return nil
}

// rebuild replaces the member's engine with one for the current
// assignment: the key groups it keeps are resumed from its own copy of
// their committed state, new ones from their changelog.
func (m *member) rebuild(ctx context.Context) error {
	if m.gen != nil {
		err := m.gen.sess.Stop()
		m.gen = nil
		if err != nil {
			return err
		}
	}
	start := time.Now()
	assign := m.assignment()
	W := m.set.Workers
	g := &generation{assign: assign, own: map[string]map[int32]bool{}, pending: make([]atomic.Int64, W),
		inputs: map[string][]*Queue{}, remote: map[remoteKey]*remoteQueue{}}
	for t, ps := range assign {
		g.own[t] = map[int32]bool{}
		for _, p := range ps {
			g.own[t][p] = true
		}
	}
	resume := make([]map[string][]engine.StateRow, W)
	for i := range resume {
		resume[i] = map[string][]engine.StateRow{}
	}
	records, keys := 0, 0
	for _, k := range m.keyed {
		have := m.mirror[k.id]
		if have == nil {
			have = map[int32]map[string][]byte{}
			m.mirror[k.id] = have
		}
		for p := range have {
			if !g.own[k.repartition][p] {
				delete(have, p) // another member owns it now
			}
		}
		var missing []int32
		for _, p := range assign[k.repartition] {
			if have[p] == nil {
				missing = append(missing, p)
				have[p] = map[string][]byte{}
			}
		}
		if len(missing) > 0 {
			n, err := m.readPartitions(ctx, k.changelog, missing, func(r *kgo.Record) {
				if r.Value == nil {
					delete(have[r.Partition], string(r.Key))
				} else {
					have[r.Partition][string(r.Key)] = r.Value
				}
			})
			if err != nil {
				return fmt.Errorf("step %s: restore from changelog %s: %w", k.id, k.changelog, err)
			}
			records += n
		}
		for _, p := range assign[k.repartition] {
			w := int(p) % W
			for key, v := range have[p] {
				resume[w][k.id] = append(resume[w][k.id], engine.StateRow{Key: key, Value: v})
				keys++
			}
		}
	}
	m.gen = g
	// The session's steps may emit as soon as they start (a restored
	// window whose time has passed): the transaction must be open.
	if err := m.begin(); err != nil {
		m.gen = nil
		return err
	}
	sess, err := runner.StartSession(m.flow, runner.SessionConfig{
		Workers: W, Clock: m.set.Clock, Context: WithMember(ctx, m), Resume: resume, Remote: m, EpochInterval: m.set.Interval,
		Drained: func(w int) bool { return g.pending[w].Load() == 0 },
		Stats:   m.stats,
	})
	if err != nil {
		m.gen = nil
		return err
	}
	g.sess = sess
	if m.view != nil && !m.attached {
		m.set.API.Attach(m.view) // every step is built: the counters are complete
		m.attached = true
	}
	m.log.Info("restored state", "partitions", describe(assign), "changelog_records", records, "keys", keys,
		"duration", time.Since(start).Round(time.Millisecond).String())
	return nil
}

// change is one changed key of an epoch, as a changelog record.
type change struct {
	rec  *kgo.Record
	step string
}

// changelog turns an epoch's state changes of keyed steps into changelog
// records (a deleted key is a tombstone); the other steps' rows (input
// positions, sink states) mean nothing in group mode.
func (m *member) changelog(rows []engine.Row) ([]change, error) {
	var out []change
	for _, r := range rows {
		k := m.byStep[r.Step]
		if k == nil {
			continue
		}
		p, err := k.route(r.Key, m.kg)
		if err != nil {
			return nil, fmt.Errorf("step %s, key %q: %w", r.Step, r.Key, err)
		}
		rec := &kgo.Record{Topic: k.changelog, Partition: int32(p), Key: []byte(r.Key)}
		if !r.Deleted {
			rec.Value = r.Value
		}
		out = append(out, change{rec: rec, step: r.Step})
	}
	return out, nil
}

// remember applies a committed change to the member's copy of its state.
func (m *member) remember(c change) {
	kv := m.mirror[c.step][c.rec.Partition]
	if kv == nil {
		return
	}
	if c.rec.Value == nil {
		delete(kv, string(c.rec.Key))
	} else {
		kv[string(c.rec.Key)] = c.rec.Value
	}
}
