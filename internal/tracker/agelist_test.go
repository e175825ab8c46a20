package tracker

import "testing"

func TestAgeListPushRemove(t *testing.T) {
	var l ageList
	l.init()
	rows := make([]*Socket, 4)
	for i := range rows {
		rows[i] = &Socket{Cookie: uint64(i + 1)}
		l.push(rows[i])
	}
	l.remove(rows[1])
	l.remove(rows[1]) // not listed any more: nothing happens
	l.remove(&Socket{Cookie: 99})
	var got []uint64
	for s := range l.all() {
		got = append(got, s.Cookie)
	}
	want := []uint64{1, 3, 4}
	if l.len() != len(want) || len(got) != len(want) {
		t.Fatalf("listed %v (len %d), want %v", got, l.len(), want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("listed %v, want %v", got, want)
		}
	}
	for _, s := range rows {
		l.remove(s)
	}
	if l.len() != 0 || l.head.ageNext != &l.head {
		t.Fatalf("not empty after removing every row: len %d", l.len())
	}
}
