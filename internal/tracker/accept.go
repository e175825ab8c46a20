package tracker

import (
	"time"

	"github.com/tcpstated/tcpstated/internal/events"
)

// When several processes listen on one port (SO_REUSEPORT), the kernel
// picks a listener per connection and the child's first records, made in
// softirq, cannot say which. The kernel side names it in a KindAccept
// record right after the handshake, on the same CPU; until then the
// child's records wait here, so that they are applied and streamed with
// the owner they should have had.
const (
	awaitMax     = 4096 // children waiting at once
	awaitChanges = 4    // changes one child may make while it waits
	// awaitFor: the record comes microseconds after the handshake; a
	// child that waits longer goes on without an owner.
	awaitFor = 100 * time.Millisecond
)

type awaiting struct {
	evs   [awaitChanges]events.Event
	n     int
	since uint64
}

// wait holds the LISTEN -> SYN_RECV of a child whose listener is
// ambiguous, when the kernel side will name the listener.
func (t *Tracker) wait(ev *events.Event) bool {
	if !t.cfg.AwaitAccept || t.releasing {
		return false
	}
	if len(t.awaiting) >= awaitMax {
		t.stats.AcceptUnnamed++
		return false
	}
	if t.awaiting == nil {
		t.awaiting = make(map[uint64]*awaiting)
	}
	var a *awaiting
	if n := len(t.awaitFree); n > 0 {
		a, t.awaitFree = t.awaitFree[n-1], t.awaitFree[:n-1]
	} else {
		a = &awaiting{}
	}
	a.evs[0], a.n, a.since = *ev, 1, ev.Mono
	t.awaiting[ev.Cookie] = a
	return true
}

// waiting queues a later change of a waiting child behind the ones before
// it. A child with no row is the only kind that can be waiting (and one
// being released is no longer in awaiting).
func (t *Tracker) waiting(ev *events.Event, emit func(*Report)) bool {
	a := t.awaiting[ev.Cookie]
	if a == nil {
		return false
	}
	if last := &a.evs[a.n-1]; ev.Kind == events.KindState && last.Old == ev.Old && last.New == ev.New {
		t.stats.Duplicates++
		return true
	}
	if a.n == awaitChanges || ev.Kind != events.KindState {
		t.stats.AcceptUnnamed++
		t.releaseWaiting(ev.Cookie, a, nil, emit)
		return false
	}
	a.evs[a.n] = *ev
	a.n++
	return true
}

// accepted takes the kernel's word on a child's listener.
func (t *Tracker) accepted(ev *events.Event, emit func(*Report)) {
	a := t.awaiting[ev.Cookie]
	if a == nil {
		return // its listener was not in doubt, or it waited too long
	}
	l := t.listenerOf(ev)
	if l == nil {
		t.stats.AcceptUnnamed++
	}
	t.releaseWaiting(ev.Cookie, a, l, emit)
}

// releaseWaiting applies a waiting child's changes in order, owned by listener l
// if one is known.
func (t *Tracker) releaseWaiting(cookie uint64, a *awaiting, l *Socket, emit func(*Report)) {
	delete(t.awaiting, cookie)
	if l != nil {
		e := &a.evs[0]
		e.Pid, e.Comm, e.Owner = l.Pid, l.Comm, events.OwnerAccept
	}
	t.releasing = true
	for i := range a.n {
		t.applyState(&a.evs[i], emit, SourceTracepoint)
	}
	t.releasing = false
	if len(t.awaitFree) < awaitMax {
		t.awaitFree = append(t.awaitFree, a)
	}
}

// expireAwaiting lets children go on without an owner once they waited
// awaitFor (all of them when final: the daemon is stopping).
func (t *Tracker) expireAwaiting(now uint64, final bool, emit func(*Report)) {
	for cookie, a := range t.awaiting {
		if final || now-a.since >= uint64(awaitFor) {
			t.stats.AcceptUnnamed++
			t.releaseWaiting(cookie, a, nil, emit)
		}
	}
}

// FlushAwaiting lets every waiting child go on: the daemon is stopping.
func (t *Tracker) FlushAwaiting(emit func(*Report)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expireAwaiting(0, true, emit)
}
