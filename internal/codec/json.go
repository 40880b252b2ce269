package codec

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"sort"
	"strconv"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// ToJSON renders one encoded value as compact JSON for `runnel recovery
// inspect`, without knowing the Go type it was encoded from. JSON cannot hold
// everything CBOR can, so it approximates, always in a way a reader can undo:
// map keys that are not strings are formatted as strings (integers in decimal,
// others as their JSON text), byte strings become base64 strings, and NaN,
// +Inf and -Inf become the strings "NaN", "+Inf" and "-Inf". Object keys are
// sorted.
func ToJSON(data []byte) ([]byte, error) {
	var buf bytes.Buffer
	rest, err := render(&buf, data, 0)
	if err != nil {
		return nil, fmt.Errorf("codec: decode for json: %w", err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("codec: decode for json: %d trailing bytes after the value", len(rest))
	}
	return buf.Bytes(), nil
}

// render writes the first CBOR data item of data as JSON and returns the bytes
// after it. Arrays and maps are walked here rather than decoded into any,
// because map keys may be arrays, which Go cannot use as keys of map[any]any.
func render(buf *bytes.Buffer, data []byte, depth int) ([]byte, error) {
	if depth > 1024 {
		return nil, errors.New("nested too deeply")
	}
	if len(data) == 0 {
		return nil, io.ErrUnexpectedEOF
	}
	major := data[0] >> 5
	if major != 4 && major != 5 {
		var v any
		rest, err := anyMode.UnmarshalFirst(data, &v)
		if err != nil {
			return nil, err
		}
		return rest, writeJSON(buf, v)
	}
	n, indef, data, err := head(data)
	if err != nil {
		return nil, err
	}
	more := func(i uint64) bool {
		if indef {
			if len(data) > 0 && data[0] == 0xff {
				data = data[1:]
				return false
			}
			return true
		}
		return i < n
	}
	if major == 4 {
		buf.WriteByte('[')
		for i := uint64(0); more(i); i++ {
			if i > 0 {
				buf.WriteByte(',')
			}
			if data, err = render(buf, data, depth+1); err != nil {
				return nil, err
			}
		}
		buf.WriteByte(']')
		return data, nil
	}
	type kv struct{ k, v string }
	var pairs []kv
	for i := uint64(0); more(i); i++ {
		var k string
		if k, data, err = renderKey(data, depth+1); err != nil {
			return nil, err
		}
		var vb bytes.Buffer
		if data, err = render(&vb, data, depth+1); err != nil {
			return nil, err
		}
		pairs = append(pairs, kv{k, vb.String()})
	}
	sort.Slice(pairs, func(i, j int) bool { return pairs[i].k < pairs[j].k })
	buf.WriteByte('{')
	for i, p := range pairs {
		if i > 0 {
			buf.WriteByte(',')
		}
		writeString(buf, p.k)
		buf.WriteByte(':')
		buf.WriteString(p.v)
	}
	buf.WriteByte('}')
	return data, nil
}

// renderKey formats one map key as a JSON object key.
func renderKey(data []byte, depth int) (string, []byte, error) {
	if len(data) == 0 {
		return "", nil, io.ErrUnexpectedEOF
	}
	if major := data[0] >> 5; major != 4 && major != 5 {
		var v any
		rest, err := anyMode.UnmarshalFirst(data, &v)
		if err != nil {
			return "", nil, err
		}
		s, err := keyString(v)
		return s, rest, err
	}
	var b bytes.Buffer
	rest, err := render(&b, data, depth)
	return b.String(), rest, err
}

// head parses the head of an array or map: its length, or indef for an
// indefinite-length container, and the bytes after the head.
func head(data []byte) (n uint64, indef bool, rest []byte, err error) {
	info := data[0] & 0x1f
	data = data[1:]
	switch {
	case info < 24:
		return uint64(info), false, data, nil
	case info == 31:
		return 0, true, data, nil
	case info > 27:
		return 0, false, nil, fmt.Errorf("malformed container head 0x%02x", info)
	}
	size := 1 << (info - 24)
	if len(data) < size {
		return 0, false, nil, io.ErrUnexpectedEOF
	}
	for _, b := range data[:size] {
		n = n<<8 | uint64(b)
	}
	return n, false, data[size:], nil
}

func writeJSON(buf *bytes.Buffer, v any) error {
	switch x := v.(type) {
	case nil:
		buf.WriteString("null")
	case bool:
		buf.WriteString(strconv.FormatBool(x))
	case uint64:
		buf.WriteString(strconv.FormatUint(x, 10))
	case int64:
		buf.WriteString(strconv.FormatInt(x, 10))
	case big.Int:
		buf.WriteString(x.String())
	case *big.Int:
		buf.WriteString(x.String())
	case float32:
		writeFloat(buf, float64(x), 32)
	case float64:
		writeFloat(buf, x, 64)
	case string:
		writeString(buf, x)
	case []byte:
		writeString(buf, base64.StdEncoding.EncodeToString(x))
	case time.Time:
		writeString(buf, x.Format(time.RFC3339Nano))
	case []any:
		buf.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeJSON(buf, e); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case map[any]any:
		type kv struct {
			k string
			v any
		}
		pairs := make([]kv, 0, len(x))
		for k, e := range x {
			ks, err := keyString(k)
			if err != nil {
				return err
			}
			pairs = append(pairs, kv{ks, e})
		}
		sort.Slice(pairs, func(i, j int) bool { return pairs[i].k < pairs[j].k })
		buf.WriteByte('{')
		for i, p := range pairs {
			if i > 0 {
				buf.WriteByte(',')
			}
			writeString(buf, p.k)
			buf.WriteByte(':')
			if err := writeJSON(buf, p.v); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	case cbor.Tag:
		buf.WriteString(`{"tag":`)
		buf.WriteString(strconv.FormatUint(x.Number, 10))
		buf.WriteString(`,"content":`)
		if err := writeJSON(buf, x.Content); err != nil {
			return err
		}
		buf.WriteByte('}')
	case cbor.SimpleValue:
		writeString(buf, fmt.Sprintf("simple(%d)", uint8(x)))
	default:
		return fmt.Errorf("codec: json: unexpected decoded value of type %T", v)
	}
	return nil
}

func keyString(k any) (string, error) {
	switch x := k.(type) {
	case string:
		return x, nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case bool:
		return strconv.FormatBool(x), nil
	case cbor.ByteString:
		return base64.StdEncoding.EncodeToString([]byte(x)), nil
	}
	var b bytes.Buffer
	if err := writeJSON(&b, k); err != nil {
		return "", err
	}
	return b.String(), nil
}

func writeFloat(buf *bytes.Buffer, f float64, bits int) {
	switch {
	case math.IsNaN(f):
		buf.WriteString(`"NaN"`)
	case math.IsInf(f, 1):
		buf.WriteString(`"+Inf"`)
	case math.IsInf(f, -1):
		buf.WriteString(`"-Inf"`)
	default:
		b, _ := json.Marshal(f) // cannot fail for finite floats
		if bits == 32 {
			b, _ = json.Marshal(float32(f))
		}
		buf.Write(b)
	}
}

func writeString(buf *bytes.Buffer, s string) {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)           // strings always encode
	buf.Truncate(buf.Len() - 1) // drop Encode's newline
}
