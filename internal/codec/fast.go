package codec

import (
	"encoding/binary"
	"math"
)

// Decode decodes data into *v exactly as Unmarshal does. For the types
// state most often is (the integer kinds, string, bool, float64) it reads
// the encodings Marshal writes itself, without reflection: resuming a
// million counters then costs a few milliseconds instead of a tenth of a
// second. Anything else, and any input the fast path is not sure of (a
// longer than shortest header, a tag, a value out of range, trailing
// bytes, NaN), goes through Unmarshal, so results and errors are always
// Unmarshal's. Only the exact types are fast: a named type (type Count
// int) may have its own decoding method and takes Unmarshal's path.
func Decode[T any](data []byte, v *T) error {
	if decodeBasic(data, v) {
		return nil
	}
	return Unmarshal(data, v)
}

// decodeBasic decodes data into v if v is a pointer to a basic type it
// knows and data is exactly one shortest-form item of the matching major
// type whose value fits; it reports whether it did. It never changes *v
// when it returns false.
func decodeBasic(data []byte, v any) bool {
	switch p := v.(type) {
	case *int:
		return decodeSigned(data, p)
	case *int64:
		return decodeSigned(data, p)
	case *int32:
		return decodeSigned(data, p)
	case *int16:
		return decodeSigned(data, p)
	case *int8:
		return decodeSigned(data, p)
	case *uint:
		return decodeUnsigned(data, p)
	case *uint64:
		return decodeUnsigned(data, p)
	case *uint32:
		return decodeUnsigned(data, p)
	case *uint16:
		return decodeUnsigned(data, p)
	case *uint8:
		return decodeUnsigned(data, p)
	case *string:
		n, size, ok := shortHead(data, majorText)
		if !ok || uint64(len(data)-size) != n {
			return false
		}
		*p = string(data[size:])
		return true
	case *bool:
		if len(data) != 1 || (data[0] != 0xf4 && data[0] != 0xf5) {
			return false
		}
		*p = data[0] == 0xf5
		return true
	case *float64:
		f, ok := decodeFloat(data)
		if ok {
			*p = f
		}
		return ok
	}
	return false
}

// CBOR major types (RFC 8949 section 3.1), as the top 3 bits of a head.
const (
	majorUint byte = 0 << 5
	majorNeg  byte = 1 << 5
	majorText byte = 3 << 5
)

// shortHead reads the head of an item of major type major with a definite
// argument in its shortest form (as Marshal writes it): the argument
// and the head's size in bytes. ok is false for anything else.
func shortHead(data []byte, major byte) (n uint64, size int, ok bool) {
	if len(data) == 0 || data[0]&0xe0 != major {
		return 0, 0, false
	}
	switch ai := data[0] & 0x1f; {
	case ai < 24:
		return uint64(ai), 1, true
	case ai == 24 && len(data) >= 2:
		n = uint64(data[1])
		return n, 2, n >= 24
	case ai == 25 && len(data) >= 3:
		n = uint64(binary.BigEndian.Uint16(data[1:]))
		return n, 3, n > math.MaxUint8
	case ai == 26 && len(data) >= 5:
		n = uint64(binary.BigEndian.Uint32(data[1:]))
		return n, 5, n > math.MaxUint16
	case ai == 27 && len(data) >= 9:
		n = binary.BigEndian.Uint64(data[1:])
		return n, 9, n > math.MaxUint32
	}
	return 0, 0, false
}

func decodeSigned[I int | int64 | int32 | int16 | int8](data []byte, p *I) bool {
	if len(data) == 0 {
		return false
	}
	major := data[0] & 0xe0
	if major != majorUint && major != majorNeg {
		return false
	}
	n, size, ok := shortHead(data, major)
	if !ok || size != len(data) || n > math.MaxInt64 {
		return false
	}
	v := int64(n)
	if major == majorNeg {
		v = -1 - v
	}
	if int64(I(v)) != v {
		return false // out of range: Unmarshal says so
	}
	*p = I(v)
	return true
}

func decodeUnsigned[U uint | uint64 | uint32 | uint16 | uint8](data []byte, p *U) bool {
	n, size, ok := shortHead(data, majorUint)
	if !ok || size != len(data) || uint64(U(n)) != n {
		return false
	}
	*p = U(n)
	return true
}

// decodeFloat reads a half, single or double precision float that is not
// a NaN (Unmarshal decides what a NaN's payload becomes).
func decodeFloat(data []byte) (float64, bool) {
	var f float64
	switch {
	case len(data) == 9 && data[0] == 0xfb:
		f = math.Float64frombits(binary.BigEndian.Uint64(data[1:]))
	case len(data) == 5 && data[0] == 0xfa:
		f = float64(math.Float32frombits(binary.BigEndian.Uint32(data[1:])))
	case len(data) == 3 && data[0] == 0xf9:
		f = halfToFloat(binary.BigEndian.Uint16(data[1:]))
	default:
		return 0, false
	}
	return f, !math.IsNaN(f)
}

// halfToFloat converts an IEEE 754 half-precision float, exactly.
func halfToFloat(h uint16) float64 {
	exp := int(h>>10) & 0x1f
	frac := float64(h & 0x3ff)
	var f float64
	switch exp {
	case 0: // zero or subnormal
		f = math.Ldexp(frac, -24)
	case 0x1f:
		if frac != 0 {
			return math.NaN()
		}
		f = math.Inf(1)
	default:
		f = math.Ldexp(1024+frac, exp-25)
	}
	if h&0x8000 != 0 {
		f = -f
	}
	return f
}
