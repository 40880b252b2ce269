// Package keys holds the operations Runnel needs on state keys: a stable
// hash for routing, and the text form written to recovery data.
//
// Keys are strings or integers. Integer keys are hashed from their 8-byte
// little-endian form and are only formatted as text when a snapshot is
// written, so a keyed step over integer ids never pays for strconv.
package keys

import (
	"fmt"
	"math/bits"
	"reflect"
	"strconv"
	"unsafe"

	"github.com/cespare/xxhash/v2"
)

// Key is the constraint on state keys: strings and integer kinds.
type Key interface {
	~string | ~int | ~int8 | ~int16 | ~int32 | ~int64 |
		~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~uintptr
}

// Ops are the per-type key operations, chosen once per key type so the hot
// path calls a plain function value instead of switching on the kind.
type Ops[K Key] struct {
	// Hash is the stable 64-bit hash: XXH64 (seed 0) of the string's bytes or
	// of the integer's 8-byte little-endian two's-complement form.
	Hash func(K) uint64
	// Format renders the key as recovery text (the string itself, or base-10).
	Format func(K) string
	// Parse is the inverse of Format.
	Parse func(string) (K, error)
}

// For returns the operations for K.
func For[K Key]() Ops[K] {
	var zero K
	t := reflect.TypeOf(zero)
	switch t.Kind() {
	case reflect.String:
		return Ops[K]{
			Hash:   func(k K) uint64 { return xxhash.Sum64String(*(*string)(unsafe.Pointer(&k))) },
			Format: func(k K) string { return *(*string)(unsafe.Pointer(&k)) },
			Parse: func(s string) (K, error) {
				var k K
				*(*string)(unsafe.Pointer(&k)) = s
				return k, nil
			},
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		size := int(t.Size())
		load := signedLoader[K](size)
		return Ops[K]{
			Hash:   func(k K) uint64 { return Uint64(uint64(load(&k))) },
			Format: func(k K) string { return strconv.FormatInt(load(&k), 10) },
			Parse: func(s string) (K, error) {
				var k K
				v, err := strconv.ParseInt(s, 10, size*8)
				if err != nil {
					return k, fmt.Errorf("key %q is not a %s: %w", s, t, err)
				}
				store(&k, uint64(v), size)
				return k, nil
			},
		}
	default:
		size := int(t.Size())
		load := unsignedLoader[K](size)
		return Ops[K]{
			Hash:   func(k K) uint64 { return Uint64(load(&k)) },
			Format: func(k K) string { return strconv.FormatUint(load(&k), 10) },
			Parse: func(s string) (K, error) {
				var k K
				v, err := strconv.ParseUint(s, 10, size*8)
				if err != nil {
					return k, fmt.Errorf("key %q is not a %s: %w", s, t, err)
				}
				store(&k, v, size)
				return k, nil
			},
		}
	}
}

// The constraint mixes strings and integers, so generic code cannot convert
// K to an integer; these read and write the integer through its size instead.
func signedLoader[K Key](size int) func(*K) int64 {
	switch size {
	case 1:
		return func(k *K) int64 { return int64(*(*int8)(unsafe.Pointer(k))) }
	case 2:
		return func(k *K) int64 { return int64(*(*int16)(unsafe.Pointer(k))) }
	case 4:
		return func(k *K) int64 { return int64(*(*int32)(unsafe.Pointer(k))) }
	default:
		return func(k *K) int64 { return *(*int64)(unsafe.Pointer(k)) }
	}
}

func unsignedLoader[K Key](size int) func(*K) uint64 {
	switch size {
	case 1:
		return func(k *K) uint64 { return uint64(*(*uint8)(unsafe.Pointer(k))) }
	case 2:
		return func(k *K) uint64 { return uint64(*(*uint16)(unsafe.Pointer(k))) }
	case 4:
		return func(k *K) uint64 { return uint64(*(*uint32)(unsafe.Pointer(k))) }
	default:
		return func(k *K) uint64 { return *(*uint64)(unsafe.Pointer(k)) }
	}
}

func store[K Key](k *K, v uint64, size int) {
	switch size {
	case 1:
		*(*uint8)(unsafe.Pointer(k)) = uint8(v)
	case 2:
		*(*uint16)(unsafe.Pointer(k)) = uint16(v)
	case 4:
		*(*uint32)(unsafe.Pointer(k)) = uint32(v)
	default:
		*(*uint64)(unsafe.Pointer(k)) = v
	}
}

const (
	prime1 uint64 = 11400714785074694791
	prime2 uint64 = 14029467366897019727
	prime3 uint64 = 1609587929392839161
	prime4 uint64 = 9650029242287828579
	prime5 uint64 = 2870177450012600261
)

// Uint64 is XXH64 with seed 0 of v's 8-byte little-endian encoding, written
// out so that hashing an integer key neither allocates nor copies.
// It equals xxhash.Sum64 of those bytes (tested).
func Uint64(v uint64) uint64 {
	h := prime5 + 8
	k1 := bits.RotateLeft64(v*prime2, 31) * prime1
	h ^= k1
	h = bits.RotateLeft64(h, 27)*prime1 + prime4
	h ^= h >> 33
	h *= prime2
	h ^= h >> 29
	h *= prime3
	h ^= h >> 32
	return h
}
