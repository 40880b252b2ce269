package recovery

import (
	"fmt"
	"sort"
	"strings"
)

// Plan says what a new execution does with each stored and each current
// stateful step. It is computed by [MakePlan] before anything is written, so
// that a user can print it (--recovery-plan) and so that [Store.Begin] can
// refuse a run that would lose state.
type Plan struct {
	New     []string // in the flow, nothing stored: start empty
	Kept    []string // stored with the type the flow still has: resumed
	Dropped []string // stored and named in drop: deleted, start empty if still in the flow
	Missing []string // stored, gone from the flow, not dropped: refused
	Changed []Change // stored with another type than the flow's, not dropped, no migration: refused
	// Migrated lists the changed steps whose stored type is the one a
	// registered [Migration] converts from: their state is converted key
	// by key on resume.
	Migrated []Migrate
	// Unneeded lists steps that registered a migration that this run does
	// not need: they are new, or their stored state already has the
	// current type (for example because an earlier run migrated it).
	Unneeded []string
	// UnknownDrops lists drop entries that name no stored step; refused,
	// because a typo in --drop-state would otherwise go unnoticed.
	UnknownDrops []string

	// Stored and Current are the inputs of MakePlan; Begin writes Current
	// as the new steps table (and, for a migrated step, Stored until the
	// migration commits).
	Stored, Current map[string]StepState

	migrations map[string]Migration // the registered migrations, by step
}

// Migrating says whether the plan converts step's stored state.
func (p Plan) Migrating(step string) bool {
	for _, m := range p.Migrated {
		if m.Step == step {
			return true
		}
	}
	return false
}

// StepState is what recovery data records about one stateful step's state.
type StepState struct {
	// Type describes the state's Go type as the step reports it, for
	// example "key string, state main.Counts".
	Type string
	// Shape is the codec's fingerprint of the state type's structure
	// (field names and types, recursively; see the codec's Shape), so that
	// renaming a field is a change even though the type's name is not.
	// It is "" when unknown: for steps stored in format 1.
	Shape string
}

// Change is a stored step whose state type or shape differs from the flow's.
type Change struct {
	Step            string
	Stored, Current StepState
}

// Migration is a conversion the flow registered for a step's state (an
// operator's migration option): it converts state stored with the type
// From into the step's current type.
type Migration struct {
	Step string
	// From is what the step recorded with its old state type: its Type
	// (the same text with the old type's name) and Shape.
	From StepState
	// Name is the old state type's name as it appears in From.Type. A
	// stored step whose type text differs from From.Type only there (the
	// old type was renamed to keep it beside the new one) still matches,
	// when both shapes are recorded and equal.
	Name string
}

// matches says whether state stored as stored is what m converts from.
func (m Migration) matches(stored StepState) bool {
	if stored.Type == m.From.Type {
		return stored.Shape == "" || m.From.Shape == "" || stored.Shape == m.From.Shape
	}
	if stored.Shape == "" || stored.Shape != m.From.Shape || m.Name == "" {
		return false
	}
	i := strings.Index(m.From.Type, m.Name)
	if i < 0 {
		return false
	}
	pre, post := m.From.Type[:i], m.From.Type[i+len(m.Name):]
	return len(stored.Type) > len(pre)+len(post) && strings.HasPrefix(stored.Type, pre) && strings.HasSuffix(stored.Type, post)
}

// Migrate is a stored step whose state a run converts with its registered
// migration.
type Migrate struct {
	Step            string
	Stored, Current StepState
	// Keys is how many keys were converted, -1 until the conversion ran.
	Keys int
}

// ShapeOnly says whether the type's name is unchanged and only its shape
// differs (a field renamed, added, removed or retyped).
func (c Change) ShapeOnly() bool { return c.Stored.Type == c.Current.Type }

// MakePlan compares the stored steps (from [Store.StepTypes]) with the flow's
// current stateful steps, both keyed by step id, given the step ids the user
// asked to drop and the migrations the flow registered. A step is changed
// when its type differs, or when both shapes are known and differ; a step
// stored in format 1 has no recorded shape and is resumed when its type
// matches (its values are still decoded strictly). A changed step is
// migrated instead when it registered a migration from its stored type. It
// is a pure function; every list is sorted.
func MakePlan(stored, current map[string]StepState, drop []string, migrations ...Migration) Plan {
	p := Plan{Stored: stored, Current: current}
	migrate := map[string]Migration{}
	for _, m := range migrations {
		migrate[m.Step] = m
	}
	dropped := map[string]bool{}
	for _, d := range drop {
		if dropped[d] {
			continue
		}
		dropped[d] = true
		if _, ok := stored[d]; ok {
			p.Dropped = append(p.Dropped, d)
		} else {
			p.UnknownDrops = append(p.UnknownDrops, d)
		}
	}
	for id, typ := range stored {
		if dropped[id] {
			continue
		}
		cur, ok := current[id]
		switch {
		case !ok:
			p.Missing = append(p.Missing, id)
		case cur.Type != typ.Type || (cur.Shape != "" && typ.Shape != "" && cur.Shape != typ.Shape):
			if m, ok := migrate[id]; ok && m.matches(typ) {
				p.Migrated = append(p.Migrated, Migrate{Step: id, Stored: typ, Current: cur, Keys: -1})
			} else {
				p.Changed = append(p.Changed, Change{Step: id, Stored: typ, Current: cur})
			}
		default:
			p.Kept = append(p.Kept, id)
			if _, ok := migrate[id]; ok {
				p.Unneeded = append(p.Unneeded, id)
			}
		}
	}
	for id := range current {
		if _, ok := stored[id]; !ok {
			p.New = append(p.New, id)
			if _, ok := migrate[id]; ok {
				p.Unneeded = append(p.Unneeded, id)
			}
		}
	}
	p.migrations = migrate
	sort.Strings(p.New)
	sort.Strings(p.Kept)
	sort.Strings(p.Dropped)
	sort.Strings(p.Missing)
	sort.Strings(p.UnknownDrops)
	sort.Strings(p.Unneeded)
	sort.Slice(p.Changed, func(i, j int) bool { return p.Changed[i].Step < p.Changed[j].Step })
	sort.Slice(p.Migrated, func(i, j int) bool { return p.Migrated[i].Step < p.Migrated[j].Step })
	return p
}

// Err returns nil when the plan loses no state by accident. Otherwise it
// returns one error listing every step that is gone or changed (wrapping
// [ErrStateMismatch]) and every drop that names no stored step (wrapping
// [ErrUnknownStep]), with what to do about it.
func (p Plan) Err() error {
	if len(p.Missing) == 0 && len(p.Changed) == 0 && len(p.UnknownDrops) == 0 {
		return nil
	}
	var b strings.Builder
	var errs []error
	if n := len(p.Missing) + len(p.Changed); n > 0 {
		errs = append(errs, ErrStateMismatch)
		fmt.Fprintf(&b, "%v: %d stateful step(s) would lose state:", ErrStateMismatch, n)
		for _, id := range p.Missing {
			fmt.Fprintf(&b, "\n  step %s: stored state type %s, but the step is gone from the dataflow", id, p.Stored[id].Type)
		}
		for _, c := range p.Changed {
			if c.ShapeOnly() {
				fmt.Fprintf(&b, "\n  step %s: the state type's fields changed (%s): %s", c.Step, c.Current.Type, shapeDiff(c.Stored.Shape, c.Current.Shape))
			} else {
				fmt.Fprintf(&b, "\n  step %s: stored state type %s, current state type %s", c.Step, c.Stored.Type, c.Current.Type)
			}
			if m, ok := p.migrations[c.Step]; ok {
				fmt.Fprintf(&b, "; its registered migration converts from %s, not from the stored type", m.From.Type)
				if c.Stored.Shape != "" && m.From.Shape != "" && c.Stored.Shape != m.From.Shape {
					fmt.Fprintf(&b, " (%s)", shapeDiff(c.Stored.Shape, m.From.Shape))
				}
			}
		}
		b.WriteString("\nto convert a step's state, register a migration from its stored type (see the operator's MigrateState option); to discard it on purpose, pass --drop-state STEP (stored values are never converted silently)")
	}
	if len(p.UnknownDrops) > 0 {
		if b.Len() > 0 {
			b.WriteString("\n")
		}
		errs = append(errs, ErrUnknownStep)
		known := make([]string, 0, len(p.Stored))
		for id := range p.Stored {
			known = append(known, id)
		}
		sort.Strings(known)
		stored := "none"
		if len(known) > 0 {
			stored = strings.Join(known, ", ")
		}
		fmt.Fprintf(&b, "%v: --drop-state %s (stored steps: %s)", ErrUnknownStep, strings.Join(p.UnknownDrops, ", "), stored)
	}
	return &planError{msg: "recovery: " + b.String(), errs: errs}
}

// planError carries Plan.Err's message, which lists steps verbatim (a step id
// may contain '%'), and unwraps to the sentinels it reports.
type planError struct {
	msg  string
	errs []error
}

func (e *planError) Error() string   { return e.msg }
func (e *planError) Unwrap() []error { return e.errs }

// String renders the plan one line per step, sorted by step id, for
// --recovery-plan.
func (p Plan) String() string {
	type line struct{ id, text string }
	var lines []line
	for _, id := range p.New {
		lines = append(lines, line{id, fmt.Sprintf("new      %s (%s): starts empty", id, p.Current[id].Type)})
	}
	unneeded := func(id string) string {
		if i := sort.SearchStrings(p.Unneeded, id); i < len(p.Unneeded) && p.Unneeded[i] == id {
			return fmt.Sprintf("; migration from %s not needed", p.migrations[id].From.Type)
		}
		return ""
	}
	for i, id := range p.New {
		lines[i].text += unneeded(id)
	}
	for _, id := range p.Kept {
		text := fmt.Sprintf("resume   %s (%s)", id, p.Current[id].Type)
		if p.Stored[id].Shape == "" && p.Current[id].Shape != "" {
			text += ": shape not recorded (format 1), recorded from this run on"
		}
		lines = append(lines, line{id, text + unneeded(id)})
	}
	for _, m := range p.Migrated {
		text := fmt.Sprintf("migrate  %s: stored %s, now %s: ", m.Step, m.Stored.Type, m.Current.Type)
		if m.Keys >= 0 {
			text += fmt.Sprintf("%d %s converted", m.Keys, plural(m.Keys, "key", "keys"))
		} else {
			text += "converted key by key on resume"
		}
		lines = append(lines, line{m.Step, text})
	}
	for _, id := range p.Dropped {
		text := fmt.Sprintf("drop     %s (%s): stored state deleted", id, p.Stored[id].Type)
		if cur, ok := p.Current[id]; ok {
			text += fmt.Sprintf(", starts empty (%s)", cur.Type)
		}
		lines = append(lines, line{id, text})
	}
	for _, id := range p.Missing {
		lines = append(lines, line{id, fmt.Sprintf("MISSING  %s (%s): gone from the dataflow; pass --drop-state %s to discard", id, p.Stored[id].Type, id)})
	}
	for _, c := range p.Changed {
		if c.ShapeOnly() {
			lines = append(lines, line{c.Step, fmt.Sprintf("CHANGED  %s (%s): shape changed: %s; pass --drop-state %s to discard",
				c.Step, c.Current.Type, shapeDiff(c.Stored.Shape, c.Current.Shape), c.Step)})
		} else {
			lines = append(lines, line{c.Step, fmt.Sprintf("CHANGED  %s: stored %s, now %s; pass --drop-state %s to discard", c.Step, c.Stored.Type, c.Current.Type, c.Step)})
		}
	}
	for _, id := range p.UnknownDrops {
		lines = append(lines, line{id, fmt.Sprintf("UNKNOWN  %s: --drop-state names no stored step", id)})
	}
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].id < lines[j].id })
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.text)
		b.WriteByte('\n')
	}
	if len(lines) == 0 {
		b.WriteString("no stateful steps\n")
	}
	return b.String()
}

// shapeDiff shows where two shapes part: the text around the first
// difference of each, so that a renamed field is visible in a long shape.
func shapeDiff(stored, current string) string {
	if len(stored) <= 80 && len(current) <= 80 {
		return fmt.Sprintf("stored %s, now %s", stored, current)
	}
	i := 0
	for i < len(stored) && i < len(current) && stored[i] == current[i] {
		i++
	}
	// Back up to the start of the field or element that differs.
	start := strings.LastIndexAny(stored[:i], "{;[") + 1
	excerpt := func(s string) string {
		end := min(len(s), i+48)
		out := s[start:end]
		if start > 0 {
			out = "…" + out
		}
		if end < len(s) {
			out += "…"
		}
		return out
	}
	return fmt.Sprintf("stored %s, now %s", excerpt(stored), excerpt(current))
}
