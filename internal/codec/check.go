package codec

import (
	"encoding"
	"fmt"
	"math/big"
	"reflect"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
)

var (
	typeTime              = reflect.TypeFor[time.Time]()
	typeBigInt            = reflect.TypeFor[big.Int]()
	typeCBORMarshaler     = reflect.TypeFor[cbor.Marshaler]()
	typeCBORUnmarshaler   = reflect.TypeFor[cbor.Unmarshaler]()
	typeBinaryMarshaler   = reflect.TypeFor[encoding.BinaryMarshaler]()
	typeBinaryUnmarshaler = reflect.TypeFor[encoding.BinaryUnmarshaler]()
)

// CheckType reports whether values of type t survive a round trip through
// [Marshal] and [Unmarshal]. It exists because the codec silently drops
// unexported fields and cannot represent funcs, channels, raw pointers,
// complex numbers or interfaces; finding that out when the first snapshot is
// decoded, hours into a run, is too late.
//
// It walks t through pointers, slices, arrays, maps and struct fields. Types
// that encode themselves (cbor.Marshaler with cbor.Unmarshaler, or
// encoding.BinaryMarshaler with encoding.BinaryUnmarshaler, on T or *T) are
// accepted without looking inside, as are time.Time and big.Int. Struct fields
// tagged `cbor:"-"` (or `json:"-"` without a cbor tag) are skipped on purpose
// and accepted. Map keys must be strings, integers, bools or fixed-size arrays
// of those, so that they sort deterministically and compare exactly.
//
// The error is a [*TypeError] wrapping [ErrUnsupportedType] that names the
// path to the first offending part, for example
// "state type main.S: field .inner is unexported (the codec would drop it silently)".
func CheckType(t reflect.Type) error {
	if t == nil {
		return &TypeError{Type: t, Reason: "nil type (state must be a concrete type)"}
	}
	c := checker{root: t, seen: map[reflect.Type]bool{}}
	return c.walk(t, "")
}

type checker struct {
	root reflect.Type
	seen map[reflect.Type]bool // types already checked or being checked; breaks cycles
}

func (c *checker) fail(path, format string, args ...any) error {
	return &TypeError{Type: c.root, Path: path, Reason: fmt.Sprintf(format, args...)}
}

// subject names the part of the root type at path, for error messages.
func subject(path string, t reflect.Type) string {
	if path == "" {
		return "the type " + t.String()
	}
	return fmt.Sprintf("%s (%s)", path, t)
}

func implementsBoth(t, m, u reflect.Type) bool {
	has := func(i reflect.Type) bool {
		return t.Implements(i) || (t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(i))
	}
	return has(m) && has(u)
}

func selfEncoding(t reflect.Type) bool {
	nt := t
	for nt.Kind() == reflect.Pointer {
		nt = nt.Elem()
	}
	if nt == typeTime || nt == typeBigInt {
		return true
	}
	return implementsBoth(t, typeCBORMarshaler, typeCBORUnmarshaler) ||
		implementsBoth(t, typeBinaryMarshaler, typeBinaryUnmarshaler)
}

func (c *checker) walk(t reflect.Type, path string) error {
	if c.seen[t] {
		return nil
	}
	c.seen[t] = true
	if selfEncoding(t) {
		return nil
	}
	switch t.Kind() {
	case reflect.Bool, reflect.String,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return nil
	case reflect.Pointer:
		return c.walk(t.Elem(), path)
	case reflect.Slice, reflect.Array:
		return c.walk(t.Elem(), path+"[]")
	case reflect.Map:
		if !validKey(t.Key()) {
			hint := ""
			if k := t.Key().Kind(); k == reflect.Float32 || k == reflect.Float64 {
				// An order book keyed by price is the common case.
				hint = " (floats do not compare exactly: NaN != NaN, -0 == 0); key by an integer (a price in ticks or cents) or a string (strconv.FormatFloat), or keep a slice of pairs"
			}
			return c.fail(path, "%s has map key type %s; keys must be strings, integers, bools or fixed-size arrays of them%s",
				subject(path, t), t.Key(), hint)
		}
		return c.walk(t.Elem(), path+"[value]")
	case reflect.Struct:
		return c.walkStruct(t, path)
	case reflect.Interface:
		return c.fail(path, "%s is an interface; state must be a concrete type so that it decodes to what was encoded",
			subject(path, t))
	case reflect.Func, reflect.Chan:
		return c.fail(path, "%s is a %s, which the codec cannot encode", subject(path, t), t.Kind())
	case reflect.Complex64, reflect.Complex128:
		return c.fail(path, "%s is a complex number, which the codec cannot encode", subject(path, t))
	case reflect.Uintptr, reflect.UnsafePointer:
		return c.fail(path, "%s is a raw pointer (%s), which means nothing in another process", subject(path, t), t.Kind())
	default:
		return c.fail(path, "%s has kind %s, which the codec cannot encode", subject(path, t), t.Kind())
	}
}

func (c *checker) walkStruct(t reflect.Type, path string) error {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("cbor")
		if tag == "" {
			tag = f.Tag.Get("json")
		}
		if tag == "-" {
			continue // skipped on purpose by the user
		}
		fpath := path + "." + f.Name
		ft := f.Type
		if f.Anonymous {
			et := ft
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct && !selfEncoding(ft) {
				if !f.IsExported() && ft.Kind() == reflect.Pointer {
					return c.fail(fpath, "field %s embeds a pointer to an unexported struct, which the codec cannot allocate when decoding", fpath)
				}
				// Fields of an embedded struct are promoted; check them in place.
				if err := c.walk(ft, path); err != nil {
					return err
				}
				continue
			}
		}
		if !f.IsExported() {
			return c.fail(fpath, "field %s is unexported (the codec would drop it silently): export it (%s), or tag it `cbor:\"-\"` to leave it out of snapshots", fpath, exportedName(f.Name))
		}
		if err := c.walk(ft, fpath); err != nil {
			return err
		}
	}
	return nil
}

func validKey(k reflect.Type) bool {
	switch k.Kind() {
	case reflect.String, reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	case reflect.Array:
		return validKey(k.Elem())
	}
	return false
}

// exportedName is name with its first letter upper-cased, for the hint of
// an unexported-field error.
func exportedName(name string) string {
	r, size := utf8.DecodeRuneInString(name)
	if r == '_' || !unicode.IsLetter(r) {
		return "X" + name
	}
	return string(unicode.ToUpper(r)) + name[size:]
}
