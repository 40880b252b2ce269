package window

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/runnel-dev/runnel/internal/codec"
	"github.com/runnel-dev/runnel/internal/plan"
)

// MigrateState registers a conversion of the per-window state (the state
// S of Window's Logic, FoldWindow's accumulator) that an earlier version of
// the flow stored with the type Old. When a
// run resumes the step from recovery data that holds Old, convert is
// applied to the state of every open window of every key before the first
// item is read, and the result is written with the run's first epoch; from
// the commit of that epoch on later runs resume without converting. The
// clock, the windows' times and the queue of ordered mode are kept; the
// key type, the item type V and the windower must be the ones stored, so
// steps whose state follows V (CollectWindow, ReduceWindow, MaxWindow,
// MinWindow) cannot change it with a migration.
//
// As with op.MigrateState: a failing (or panicking) convert stops the run
// before anything is written, naming the step and key; --recovery-plan
// shows the migration and counts its keys; the stored type is recognised
// by name, or by shape when the old type was renamed; a migration a step
// does not need is ignored, and a state stored with another type is refused.
//
// The option's S must be the step's state type: a mismatch is a build error
// naming both types (window options are not typed by the operator, so the
// compiler cannot check it).
func MigrateState[Old, S any](convert func(old Old) (S, error)) Option {
	oldT := reflect.TypeFor[Old]()
	m := &stateMigration{
		old: oldT, cur: reflect.TypeFor[S](),
		oldArg:   typeArg(reflect.TypeFor[OpenWindow[Old]]()),
		oldShape: codec.Shape(reflect.TypeFor[OpenWindow[Old]]()),
		convert: func(raw codec.Raw) (out codec.Raw, err error) {
			var old Old
			if err := codec.Unmarshal(raw, &old); err != nil {
				return nil, fmt.Errorf("stored window state does not decode into %s: %w", oldT, err)
			}
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("the conversion panicked: %v", r)
				}
			}()
			s, err := convert(old)
			if err != nil {
				return nil, err
			}
			return codec.Marshal(s)
		},
	}
	return optionFunc(func(o *options) { o.migrate = m })
}

// stateMigration is MigrateState without its type parameters.
type stateMigration struct {
	old, cur reflect.Type
	oldArg   string // Old as a type argument in reflect's type names
	oldShape string // the shape of OpenWindow[Old]
	convert  func(raw codec.Raw) (codec.Raw, error)
}

// typeArg is the type argument of a one-parameter generic type's name:
// "main.Counts" in "window.OpenWindow[main.Counts]" (type arguments are
// written with their package path).
func typeArg(t reflect.Type) string {
	s := t.String()
	i := strings.IndexByte(s, '[')
	return strings.TrimSuffix(s[i+1:], "]")
}

// describeMigration is the plan's description of a window step's
// migration: its state is State[V, S], recorded as typeText(State[V, S]).
func describeMigration[V, S any](m *stateMigration, typeText func(stateText string) string) (*plan.Migration, error) {
	stateT := reflect.TypeFor[State[V, S]]()
	switch {
	case m.cur != reflect.TypeFor[S]():
		return nil, fmt.Errorf("MigrateState converts to %s, but the step's window state is %s", m.cur, reflect.TypeFor[S]())
	case m.old == m.cur:
		return nil, fmt.Errorf("MigrateState converts from %s to the same type: nothing would tell stored state from new; migrate from the old type", m.old)
	}
	if err := codec.CheckType(m.old); err != nil {
		return nil, fmt.Errorf("MigrateState: the old state type: %w", err)
	}
	curArg := typeArg(reflect.TypeFor[OpenWindow[S]]())
	text := stateT.String()
	if !strings.HasSuffix(text, ","+curArg+"]") {
		return nil, fmt.Errorf("MigrateState: cannot describe the old state type of %s", text)
	}
	fromText := strings.TrimSuffix(text, curArg+"]") + m.oldArg + "]"
	return &plan.Migration{
		FromType:  typeText(fromText),
		FromShape: codec.ShapeWith(stateT, reflect.TypeFor[OpenWindow[S]](), m.oldShape),
		Name:      m.oldArg,
		Convert: func(raw []byte) ([]byte, error) {
			var st State[V, codec.Raw]
			if err := codec.Unmarshal(raw, &st); err != nil {
				return nil, fmt.Errorf("stored window state does not decode: %w", err)
			}
			for i := range st.Windows {
				s, err := m.convert(st.Windows[i].State)
				if err != nil {
					return nil, fmt.Errorf("window %d: %w", st.Windows[i].ID, err)
				}
				st.Windows[i].State = s
			}
			return codec.Marshal(&st)
		},
	}, nil
}
