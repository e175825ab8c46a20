package tracker

import "iter"

// ageList holds the rows Tick watches for ageing into a finding (CLOSE_WAIT,
// FIN_WAIT1, FIN_WAIT2), linked through the rows themselves. Every closed
// connection passes through two or three of these states: a map insert and
// delete for each was a quarter of the tracker's time under churn.
type ageList struct {
	head Socket // sentinel: head.ageNext is the first row
	n    int
}

func (l *ageList) init() { l.head.agePrev, l.head.ageNext = &l.head, &l.head }

func (l *ageList) push(s *Socket) {
	s.agePrev, s.ageNext = l.head.agePrev, &l.head
	l.head.agePrev.ageNext = s
	l.head.agePrev = s
	l.n++
}

func (l *ageList) remove(s *Socket) {
	if s.ageNext == nil {
		return // not listed
	}
	s.agePrev.ageNext, s.ageNext.agePrev = s.ageNext, s.agePrev
	s.agePrev, s.ageNext = nil, nil
	l.n--
}

func (l *ageList) len() int { return l.n }

// all yields the listed rows; the body must not add or remove rows.
func (l *ageList) all() iter.Seq[*Socket] {
	return func(yield func(*Socket) bool) {
		for s := l.head.ageNext; s != &l.head; s = s.ageNext {
			if !yield(s) {
				return
			}
		}
	}
}
