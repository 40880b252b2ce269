package op

import (
	"bytes"
	"fmt"
	"reflect"
	"time"

	"github.com/runnel-dev/runnel/internal/codec"
	"github.com/runnel-dev/runnel/internal/plan"
)

// StateMigration converts the state a keyed stateful step stored with an
// older type into its current type S, key by key, when a run resumes. Make
// one with MigrateState and pass it to the step: as a hook of Stateful, or
// as a StateOption of the other keyed stateful operators.
type StateMigration[S any] struct{ m *stateMigration }

// StateOption changes how a keyed stateful operator keeps its state of type
// S. MigrateState makes the only one so far.
type StateOption[S any] interface{ stateOption(S) }

func (StateMigration[S]) stateOption(S) {}
func (StateMigration[S]) hook(S)        {}

// stateMigration is a StateMigration without its type parameter.
type stateMigration struct {
	old, cur reflect.Type
	// convert turns a stored stateRecord of the old type into the
	// encoding of the current one.
	convert func(raw []byte) ([]byte, error)
}

// MigrateState registers a conversion of a step's stored state from the
// type Old, which an earlier version of the flow stored, to the step's
// current state type S. When a run resumes a step whose recovery data holds
// Old, convert is applied to every stored key's state before the first item
// is read, and the converted state is written with the run's first epoch;
// from the commit of that epoch on the stored type is S and later runs
// resume without converting (the option can stay in place). --recovery-plan
// shows the migration and how many keys it converts
// ("migrate  flow.step: stored …, now …: 3 keys converted").
//
// convert returning an error (or panicking) stops the run before anything is
// written, with an error naming the step and the key; the stored state is
// left as it was. A key's pending OnNotify wake-up, if any, is kept.
//
// The stored type is recognised by its name and its shape (the field names
// and types the codec records). To keep the old definition beside the new
// one under the same name, rename the old type (Counts to CountsV1): a
// stored step matches when its type differs only in that name and the
// shapes are equal. A step whose stored state already has the type S, or
// that has no stored state, resumes or starts as usual and the migration is
// not needed (the plan says so). A step stored with a type that is neither
// Old nor S is refused as without a migration: only --drop-state discards
// state.
//
// Migrations apply to recovery directories (-r); a group-mode run
// (--group) refuses a changed state type without converting it.
//
// Old must be encodable, like any state type; Old and S being the same type
// is a build error, since nothing would tell old state from new.
func MigrateState[Old, S any](convert func(old Old) (S, error)) StateMigration[S] {
	oldT := reflect.TypeFor[Old]()
	return StateMigration[S]{&stateMigration{old: oldT, cur: reflect.TypeFor[S](),
		convert: func(raw []byte) (out []byte, err error) {
			var rec stateRecord[Old]
			// As on resume: a record without a wake-up decodes Old alone
			// (see statefulNode.resume), anything else the whole record.
			if st, ok := bytes.CutPrefix(raw, recordHeader); !ok || codec.Decode(st, &rec.State) != nil {
				rec = stateRecord[Old]{}
				if err := codec.Unmarshal(raw, &rec); err != nil {
					return nil, fmt.Errorf("stored state does not decode into %s: %w", oldT, err)
				}
			}
			s, err := callConvert(convert, rec.State)
			if err != nil {
				return nil, err
			}
			var wake time.Time
			if rec.NotifyAt != nil {
				wake = *rec.NotifyAt
			}
			return encodeRecord(s, wake)
		}}}
}

// callConvert calls a user's conversion, turning a panic into an error.
func callConvert[Old, S any](convert func(Old) (S, error), old Old) (s S, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the conversion panicked: %v", r)
		}
	}()
	return convert(old)
}

// migrationOf returns the migration among opts, if any.
func migrationOf[S any](opts []StateOption[S]) *stateMigration {
	var m *stateMigration
	for _, o := range opts {
		if sm, ok := o.(StateMigration[S]); ok && sm.m != nil {
			m = sm.m
		}
	}
	return m
}

// describe makes the plan's description of m for a keyed step whose state
// type text is typeText(state type name), or an error for a migration that
// cannot work.
func (m *stateMigration) describe(keyT reflect.Type) (*plan.Migration, error) {
	if m.old == m.cur {
		return nil, fmt.Errorf("MigrateState converts from %s to the same type: nothing would tell stored state from new; migrate from the old type", m.old)
	}
	if err := codec.CheckType(m.old); err != nil {
		return nil, fmt.Errorf("MigrateState: the old state type: %w", err)
	}
	return &plan.Migration{
		FromType:  stateTypeText(keyT, m.old),
		FromShape: codec.Shape(m.old),
		Name:      m.old.String(),
		Convert:   m.convert,
	}, nil
}

// stateTypeText is what a keyed stateful step records as its state type.
func stateTypeText(keyT, stateT reflect.Type) string {
	return fmt.Sprintf("key %s, state %s", keyT, stateT)
}
