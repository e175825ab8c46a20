package tracker

import (
	"math/rand"
	"testing"
)

// TestTableAgreesWithAMap: whatever the cache holds, get answers as the
// map alone would, through colliding cookies, removals and reuse.
func TestTableAgreesWithAMap(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	tb := newTable()
	want := map[uint64]*Socket{}
	for i := 0; i < 200000; i++ {
		// Few enough cookies that slots collide and rows come back.
		c := uint64(rng.Intn(3 * hotRows))
		switch rng.Intn(3) {
		case 0:
			s := &Socket{Cookie: c}
			tb.put(c, s)
			want[c] = s
		case 1:
			tb.remove(c)
			delete(want, c)
		}
		if got := tb.get(c); got != want[c] {
			t.Fatalf("step %d: cookie %d: got %p, want %p", i, c, got, want[c])
		}
		if tb.len() != len(want) {
			t.Fatalf("step %d: len %d, want %d", i, tb.len(), len(want))
		}
	}
	// Cookie 0 is a valid key too, and the empty slot's own value.
	if tb.get(0) != want[0] {
		t.Fatalf("cookie 0: got %p, want %p", tb.get(0), want[0])
	}
}
