package codec

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// Shape returns the fingerprint of what values of type t look like once
// encoded: field names and types, recursively. Recovery data records it for
// every stateful step, so that a state type whose name stayed the same but
// whose fields changed (a field renamed from N to Count, say) is seen as
// changed before the run starts, instead of resuming with the stored value
// silently dropped.
//
// It is a canonical text, stable across releases (changing it would make
// every stored step look changed), readable so that a plan can show what
// differs, for example
//
//	{Count:int64;Names:[]string;Seen:map[string]bool}
//
// Differences that do not change the encoding do not change the shape: the
// order of struct fields (unless the struct is encoded as an array), Go type
// names of non-struct types, pointers (a *T encodes as T), int versus int64
// and uint versus uint64. Types that encode themselves (time.Time, big.Int,
// cbor and binary marshalers) are named instead of walked, as "self(NAME)".
// A recursive type refers back to itself as "@NAME".
func Shape(t reflect.Type) string {
	if t == nil {
		return "nil"
	}
	var b strings.Builder
	s := shaper{active: map[reflect.Type]bool{}}
	s.walk(&b, t)
	return b.String()
}

// ShapeWith is the shape of t in which every occurrence of the type sub
// reads subShape instead: the shape t would have with another type in
// sub's place, which a state migration uses to describe a generic
// wrapper around the old state type.
func ShapeWith(t, sub reflect.Type, subShape string) string {
	var b strings.Builder
	s := shaper{active: map[reflect.Type]bool{}, sub: sub, subShape: subShape}
	s.walk(&b, t)
	return b.String()
}

type shaper struct {
	active   map[reflect.Type]bool // types being walked: a repeat is a cycle
	sub      reflect.Type          // ShapeWith's substitution
	subShape string
}

func (s *shaper) walk(b *strings.Builder, t reflect.Type) {
	if s.sub != nil && t == s.sub {
		b.WriteString(s.subShape)
		return
	}
	for t.Kind() == reflect.Pointer && !selfEncoding(t) {
		t = t.Elem()
	}
	if selfEncoding(t) {
		nt := t
		for nt.Kind() == reflect.Pointer {
			nt = nt.Elem()
		}
		fmt.Fprintf(b, "self(%s)", nt)
		return
	}
	switch t.Kind() {
	case reflect.Int:
		b.WriteString("int64")
	case reflect.Uint:
		b.WriteString("uint64")
	case reflect.Bool, reflect.String,
		reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		b.WriteString(t.Kind().String())
	case reflect.Slice:
		b.WriteString("[]")
		s.walk(b, t.Elem())
	case reflect.Array:
		fmt.Fprintf(b, "[%d]", t.Len())
		s.walk(b, t.Elem())
	case reflect.Map:
		b.WriteString("map[")
		s.walk(b, t.Key())
		b.WriteString("]")
		s.walk(b, t.Elem())
	case reflect.Struct:
		if s.active[t] {
			fmt.Fprintf(b, "@%s", t)
			return
		}
		s.active[t] = true
		s.walkStruct(b, t)
		delete(s.active, t)
	default:
		// Interfaces, funcs and the like: CheckType refuses them; name the kind.
		fmt.Fprintf(b, "%s(%s)", t.Kind(), t)
	}
}

type shapeField struct {
	name string
	t    reflect.Type
}

func (s *shaper) walkStruct(b *strings.Builder, t reflect.Type) {
	var fields []shapeField
	toArray := false
	s.fields(t, &fields, &toArray)
	if !toArray {
		sort.SliceStable(fields, func(i, j int) bool { return fields[i].name < fields[j].name })
		b.WriteString("{")
	} else {
		b.WriteString("array{")
	}
	for i, f := range fields {
		if i > 0 {
			b.WriteString(";")
		}
		b.WriteString(f.name)
		b.WriteString(":")
		s.walk(b, f.t)
	}
	b.WriteString("}")
}

// fields lists the encoded fields of struct t, promoting those of embedded
// structs without a name of their own, as the codec does.
func (s *shaper) fields(t reflect.Type, out *[]shapeField, toArray *bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag, hasCBOR := f.Tag.Lookup("cbor")
		if !hasCBOR {
			tag = f.Tag.Get("json")
		}
		if f.Name == "_" && hasCBOR && strings.Contains(tag, "toarray") {
			*toArray = true
			continue
		}
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		ft := f.Type
		if f.Anonymous && name == "" {
			et := ft
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct && !selfEncoding(ft) {
				s.fields(et, out, toArray)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if strings.Contains(opts, "keyasint") {
			name = "#" + name
		}
		*out = append(*out, shapeField{name: name, t: ft})
	}
}
