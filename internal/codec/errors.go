package codec

import (
	"errors"
	"fmt"
	"reflect"
)

// ErrUnsupportedType is wrapped by every [TypeError], so that callers can
// tell "this type can never be stored" apart from an I/O or decoding failure
// with errors.Is.
var ErrUnsupportedType = errors.New("unsupported state type")

// TypeError reports a type that the codec would reject or silently mangle. It
// is returned by [CheckType] before a run starts, so that a user learns about
// an unencodable state type immediately rather than after an hour of input.
type TypeError struct {
	Type   reflect.Type // the type passed to CheckType
	Path   string       // where inside Type the problem sits, e.g. ".Items[]"; "" for Type itself
	Reason string       // what is wrong there and why it matters
}

// Error names the root type and the offending path, e.g. "state type main.S:
// field .inner is unexported (the codec would drop it silently)".
func (e *TypeError) Error() string {
	return fmt.Sprintf("state type %s: %s", e.Type, e.Reason)
}

// Unwrap returns [ErrUnsupportedType].
func (e *TypeError) Unwrap() error { return ErrUnsupportedType }
