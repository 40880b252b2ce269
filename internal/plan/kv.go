package plan

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
)

// PairRepr renders a key and a value as Python prints a 2-tuple,
// ('ALL', 0): runnel.KV's String.
func PairRepr(key, value reflect.Value) string {
	var b strings.Builder
	b.WriteByte('(')
	writeRepr(&b, key)
	b.WriteString(", ")
	writeRepr(&b, value)
	b.WriteByte(')')
	return b.String()
}

// Repr renders v as Python's repr would render the equivalent value:
// strings in single quotes, booleans as True/False, nil as None, floats
// with a decimal point, slices as lists. Types with a String method use it.
func Repr(v any) string {
	var b strings.Builder
	writeRepr(&b, reflect.ValueOf(v))
	return b.String()
}

var stringer = reflect.TypeFor[fmt.Stringer]()

func writeRepr(b *strings.Builder, v reflect.Value) {
	if !v.IsValid() {
		b.WriteString("None")
		return
	}
	if v.Type().Implements(stringer) && (v.Kind() != reflect.Pointer && v.Kind() != reflect.Interface || !v.IsNil()) {
		if v.Kind() != reflect.String {
			b.WriteString(v.Interface().(fmt.Stringer).String())
			return
		}
	}
	switch v.Kind() {
	case reflect.String:
		b.WriteString(pyQuote(v.String()))
	case reflect.Bool:
		if v.Bool() {
			b.WriteString("True")
		} else {
			b.WriteString("False")
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		b.WriteString(strconv.FormatInt(v.Int(), 10))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		b.WriteString(strconv.FormatUint(v.Uint(), 10))
	case reflect.Float32, reflect.Float64:
		b.WriteString(pyFloat(v.Float(), v.Type().Bits()))
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			b.WriteString("None")
			return
		}
		writeRepr(b, v.Elem())
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			b.WriteString("[]")
			return
		}
		b.WriteByte('[')
		for i := range v.Len() {
			if i > 0 {
				b.WriteString(", ")
			}
			writeRepr(b, v.Index(i))
		}
		b.WriteByte(']')
	default:
		fmt.Fprint(b, v.Interface())
	}
}

func pyFloat(f float64, bits int) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	s := strconv.FormatFloat(f, 'g', -1, bits)
	if !strings.ContainsAny(s, ".eEn") {
		s += ".0"
	}
	return s
}

// pyQuote quotes like Python's repr of str: single quotes unless the text
// holds a single quote and no double quote.
func pyQuote(s string) string {
	q := byte('\'')
	if strings.ContainsRune(s, '\'') && !strings.ContainsRune(s, '"') {
		q = '"'
	}
	var b strings.Builder
	b.WriteByte(q)
	for _, r := range s {
		switch {
		case r == rune(q) || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte(q)
	return b.String()
}
