// Package codec is Runnel's one serialization format for operator state,
// input and sink positions, and exchange batches.
//
// It is CBOR (RFC 8949) through github.com/fxamacker/cbor/v2 in a single fixed
// mode whose name, [Name], is recorded in every recovery partition, so that a
// later release that changes the encoding can refuse (or convert) old data
// instead of misreading it:
//
//   - encoding uses Core Deterministic Encoding (sorted map keys, shortest
//     integers and floats, no indefinite lengths), so equal values give equal
//     bytes; NaN and ±Inf are kept; time.Time is an RFC 3339 string with
//     nanoseconds.
//   - decoding fails, rather than wraps, when an integer does not fit the
//     destination (IntDecConvertSignedOrFail), fails on a map key that names
//     no field of the destination struct (ExtraDecErrorUnknownField: a
//     renamed field must not resume as zero), accepts any byte sequence in a
//     text string (a Go string is bytes, not necessarily UTF-8), and lifts the
//     library's default container-size limits, which real state can exceed.
//
// Every codec silently drops unexported struct fields; [CheckType] rejects
// such types (and others the codec would mangle) before a run starts.
package codec

import (
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// Name identifies this encoding in recovery metadata. Bump the suffix when any
// option below changes the bytes written or how they are read back.
const Name = "cbor-core-det/v1"

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
	// anyMode decodes into any for ToJSON: integers keep their full uint64 or
	// int64 range instead of failing, because inspect should show data, not
	// judge it.
	anyMode cbor.DecMode
)

func init() {
	eo := cbor.CoreDetEncOptions()
	eo.Time = cbor.TimeRFC3339Nano
	var err error
	if encMode, err = eo.EncMode(); err != nil {
		panic(fmt.Sprintf("codec: encoding options: %v", err))
	}
	do := decOptions()
	if decMode, err = do.DecMode(); err != nil {
		panic(fmt.Sprintf("codec: decoding options: %v", err))
	}
	do.IntDec = cbor.IntDecConvertNone
	do.ExtraReturnErrors = cbor.ExtraDecErrorNone
	do.DupMapKey = cbor.DupMapKeyQuiet
	do.MapKeyByteString = cbor.MapKeyByteStringAllowed
	if anyMode, err = do.DecMode(); err != nil {
		panic(fmt.Sprintf("codec: generic decoding options: %v", err))
	}
}

// Raw is an encoded value kept as it is: decoding into it copies the
// value's bytes, and encoding it writes them unchanged.
type Raw = cbor.RawMessage

// Marshal encodes v in the fixed mode described in the package doc. Equal
// values give equal bytes, which lets the recovery store and tests compare
// encoded state directly.
func Marshal(v any) ([]byte, error) {
	b, err := encMode.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("codec: encode %T: %w", v, err)
	}
	return b, nil
}

// Unmarshal decodes data into v, which must be a non-nil pointer. It fails,
// rather than truncates, when a number does not fit the destination type, so
// that changing an int64 field to int8 cannot corrupt recovered state, and
// when the data holds a struct field that the destination type does not
// have, so that a renamed or removed field cannot be dropped silently.
func Unmarshal(data []byte, v any) error {
	if err := decMode.Unmarshal(data, v); err != nil {
		var unknown *cbor.UnknownFieldError
		if errors.As(err, &unknown) {
			return fmt.Errorf("codec: decode into %T: %w (the stored value has a field the type does not: was a field renamed or removed?)", v, err)
		}
		return fmt.Errorf("codec: decode into %T: %w", v, err)
	}
	return nil
}

// decOptions are the options of the strict decoding mode.
func decOptions() cbor.DecOptions {
	return cbor.DecOptions{
		IntDec:           cbor.IntDecConvertSignedOrFail,
		UTF8:             cbor.UTF8DecodeInvalid,
		MaxNestedLevels:  1024,
		MaxArrayElements: 2147483647,
		MaxMapPairs:      2147483647,
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		// A stored field the type no longer has is an error, not a value
		// silently dropped (a renamed field would otherwise resume as zero).
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
	}
}

// Wellformed reports whether data is exactly one well-formed CBOR data item,
// without decoding it into any Go type: `runnel recovery verify` uses it to
// find stored state that no type could decode.
func Wellformed(data []byte) error {
	if err := anyMode.Wellformed(data); err != nil {
		return fmt.Errorf("codec: not well-formed CBOR: %w", err)
	}
	return nil
}
