package group

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/runnel-dev/runnel/internal/codec"
	"github.com/runnel-dev/runnel/recovery"
)

// openImport makes every check before anything is written, so that a
// refused import leaves no trace on the brokers (setup, which creates the
// internal topics and records the application, runs after it); the
// returned store is locked until the caller closes it.
func (m *member) openImport(ctx context.Context) (*recovery.Store, error) {
	app, dir := m.set.App, m.set.FromRecovery
	fail := func(format string, args ...any) error {
		return fmt.Errorf("group %s: --from-recovery %s: %s", app, dir, fmt.Sprintf(format, args...))
	}
	groups, err := m.adm.DescribeGroups(ctx, app)
	if err != nil {
		return nil, fail("describe the group: %v", err)
	}
	for _, g := range groups {
		if len(g.Members) > 0 {
			return nil, fail("the group has %d live member(s); stop them: the import seeds a new application before its members start", len(g.Members))
		}
	}
	committed, err := m.adm.FetchOffsets(ctx, app)
	if err == nil {
		err = committed.Error()
	}
	if errors.Is(err, kerr.GroupIDNotFound) {
		err = nil // a group that never ran: what the import wants
	}
	if err != nil {
		return nil, fail("fetch the group's offsets: %v", err)
	}
	if n := len(committed.Offsets().Sorted()); n > 0 {
		return nil, fail("the group already has committed offsets (%d partitions): it has run, or was imported already, "+
			"and its changelogs may hold newer state; import only into a new --group", n)
	}

	store, err := recovery.OpenReadOnly(dir)
	if err != nil {
		return nil, err
	}
	if err := m.checkImport(store); err != nil {
		return nil, errors.Join(fail("%v", err), store.Close())
	}
	return store, nil
}

// checkImport checks that store can seed this flow's application.
func (m *member) checkImport(store *recovery.Store) error {
	if err := store.Lock(); err != nil {
		return fmt.Errorf("%w (stop the one-process run first)", err)
	}
	_, _, ok, err := store.Committed()
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("nothing was committed there yet")
	}
	if id := store.FlowID(); id != m.flow.ID() {
		return fmt.Errorf("%w: it holds dataflow %q, this is %q", recovery.ErrFlowMismatch, id, m.flow.ID())
	}
	stored, err := store.StepTypes()
	if err != nil {
		return err
	}
	for _, st := range m.flow.Steps() {
		k := m.byStep[st.ID]
		if k == nil {
			continue
		}
		have, ok := stored[st.ID]
		if !ok {
			continue
		}
		want := recovery.StepState{Type: st.State.Type}
		if st.State.Shape != nil {
			want.Shape = st.State.Shape()
		}
		if have.Type != want.Type || have.Shape != "" && have.Shape != want.Shape {
			return fmt.Errorf("step %s: the directory holds state of type %q, the flow's is %q; "+
				"resume the one-process run with the changed flow first (it converts or refuses the state), then import", st.ID, have.Type, want.Type)
		}
	}
	return nil
}

// importRecovery seeds a new application from the recovery directory of a
// stopped one-process run of the same flow (--from-recovery): each keyed
// step's committed state goes to its changelog, at the partition of the
// key's key group, with the bytes the one-process run stored (the engine
// encodes state the same way in both modes), and the Kafka sources'
// positions become the group's committed offsets. The members started
// afterwards restore that state and go on from those offsets, so the
// application carries on where the one-process run stopped.
//
// openImport refused a group that has live members or committed offsets:
// either the application has run (its changelogs hold newer state) or the
// import was done already. The changelog records are written before the
// offsets are committed, so an import that fails half-way can run again.
func (m *member) importRecovery(ctx context.Context, store *recovery.Store) error {
	app, dir := m.set.App, m.set.FromRecovery
	fail := func(format string, args ...any) error {
		return fmt.Errorf("group %s: --from-recovery %s: %s", app, dir, fmt.Sprintf(format, args...))
	}
	_, newest, _, err := store.Committed()
	if err != nil {
		return fail("%v", err)
	}
	inputs := map[string]bool{}
	for _, st := range m.flow.Steps() {
		if st.Input {
			inputs[st.ID] = true
		}
	}

	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(m.set.Brokers...),
		kgo.RecordPartitioner(kgo.ManualPartitioner())}, m.set.ClientOpts...)...)
	if err != nil {
		return fail("%v", err)
	}
	defer cl.Close()
	keys := map[string]int{}
	offsets := kadm.Offsets{}
	var batch []*kgo.Record
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := cl.ProduceSync(ctx, batch...).FirstErr()
		batch = batch[:0]
		return err
	}
	err = store.Load(newest+1, func(step, key string, value []byte) error {
		if k := m.byStep[step]; k != nil {
			p, err := k.route(key, m.kg)
			if err != nil {
				return err
			}
			batch = append(batch, &kgo.Record{Topic: k.changelog, Partition: int32(p), Key: []byte(key), Value: value})
			keys[step]++
			if len(batch) >= 4096 {
				return flush()
			}
			return nil
		}
		if !inputs[step] {
			return nil // sinks' and other steps' rows mean nothing in group mode
		}
		i := strings.LastIndexByte(key, '/')
		if i < 0 || !slices.Contains(m.inputs, key[:i]) {
			return fmt.Errorf("not a partition of the input topics %v", m.inputs)
		}
		p, err := strconv.ParseInt(key[i+1:], 10, 32)
		if err != nil {
			return fmt.Errorf("not a partition of the input topics %v", m.inputs)
		}
		var next int64
		if err := codec.Unmarshal(value, &next); err != nil {
			return err
		}
		offsets.Add(kadm.Offset{Topic: key[:i], Partition: int32(p), At: next, LeaderEpoch: -1})
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return fail("%v", err)
	}
	if len(offsets) > 0 {
		resp, err := m.adm.CommitOffsets(ctx, app, offsets)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			return fail("commit the input positions as the group's offsets: %v", err)
		}
	}

	out := m.set.Out
	fmt.Fprintf(out, "imported %s (dataflow %s, committed epoch %d) into group %s with %d key groups:\n", dir, m.flow.ID(), newest, app, m.kg)
	for _, step := range slices.Sorted(maps.Keys(m.byStep)) {
		fmt.Fprintf(out, "  %s: %d key(s) -> %s\n", step, keys[step], m.byStep[step].changelog)
	}
	var positions []string
	offsets.Each(func(o kadm.Offset) {
		positions = append(positions, o.Topic+"/"+strconv.Itoa(int(o.Partition))+"="+strconv.FormatInt(o.At, 10))
	})
	slices.Sort(positions)
	fmt.Fprintf(out, "  group offsets: %s\n", strings.Join(positions, " "))
	fmt.Fprintf(out, "Start the members now (without --from-recovery).\n")
	m.log.Info("imported recovery directory", "dir", dir, "epoch", newest, "keys", fmt.Sprint(keys),
		"offsets", strings.Join(positions, " "))
	return nil
}
