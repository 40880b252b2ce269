package keys

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/cespare/xxhash/v2"
)

func TestUint64MatchesXXHash(t *testing.T) {
	for _, v := range []uint64{0, 1, 2, 255, 1 << 32, math.MaxUint64, 0xdeadbeef12345678} {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], v)
		if got, want := Uint64(v), xxhash.Sum64(b[:]); got != want {
			t.Errorf("Uint64(%d) = %x, want %x", v, got, want)
		}
	}
}

type userID int32
type name string

func TestOpsRoundTrip(t *testing.T) {
	ints := For[userID]()
	for _, k := range []userID{0, -1, math.MaxInt32, math.MinInt32} {
		got, err := ints.Parse(ints.Format(k))
		if err != nil || got != k {
			t.Errorf("round trip %d: got %d, %v", k, got, err)
		}
	}
	if _, err := ints.Parse("4294967296"); err == nil {
		t.Error("parse of an out-of-range int32 key succeeded")
	}
	if ints.Hash(-1) != Uint64(math.MaxUint64) {
		t.Error("negative keys must hash their sign-extended form")
	}
	strs := For[name]()
	if strs.Format("ALL") != "ALL" || strs.Hash("ALL") != xxhash.Sum64String("ALL") {
		t.Error("string key ops")
	}
	u8 := For[uint8]()
	if _, err := u8.Parse("256"); err == nil {
		t.Error("parse of 256 into uint8 succeeded")
	}
}
