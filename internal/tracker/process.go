package tracker

import (
	"time"

	"github.com/tcpstated/tcpstated/internal/events"
)

const numStates = 16

// Process is the accounting of one process's sockets.
type Process struct {
	Pid  uint32
	Comm events.Comm
	// Live sockets by current state.
	Live [numStates]int
	// Time spent in each state by sockets that left it.
	Time [numStates]Durations
	// CLOSE_WAIT sockets past the threshold now, and ever reported.
	Leaking, Leaks int
	FirstSeen      uint64 // when the pid was first attributed a socket
	lastSeen       uint64
}

// CommStats aggregates by command name, the bounded label for metrics.
type CommStats struct {
	Time        [numStates]Durations
	Transitions uint64
	Leaks       uint64
	Conn        ConnStats // connection summaries of its sockets
}

// OtherComm collects comm values past Config.MaxComms.
const OtherComm = "other"

// lookupProc finds pid's accounting. Records come in runs for the same
// one or two processes, so the last two are kept at hand.
func (t *Tracker) lookupProc(pid uint32) *Process {
	if p := t.procHot[0]; p != nil && p.Pid == pid {
		return p
	}
	if p := t.procHot[1]; p != nil && p.Pid == pid {
		t.procHot[0], t.procHot[1] = p, t.procHot[0]
		return p
	}
	p := t.procs[pid]
	if p != nil {
		t.procHot[0], t.procHot[1] = p, t.procHot[0]
	}
	return p
}

func (t *Tracker) proc(pid uint32, comm events.Comm) *Process {
	p := t.lookupProc(pid)
	if p == nil {
		if len(t.procs) >= t.cfg.MaxProcesses && !t.evictProcess() {
			return nil
		}
		p = &Process{Pid: pid, FirstSeen: t.now}
		t.procs[pid] = p
	}
	if comm[0] != 0 {
		p.Comm = comm
	}
	p.lastSeen = t.now
	return p
}

// evictProcess drops the longest idle process that has no live socket.
func (t *Tracker) evictProcess() bool {
	var victim *Process
	for _, p := range t.procs {
		live := 0
		for _, n := range p.Live {
			live += n
		}
		if live == 0 && (victim == nil || p.lastSeen < victim.lastSeen) {
			victim = p
		}
	}
	if victim == nil {
		return false
	}
	delete(t.procs, victim.Pid)
	t.procHot = [2]*Process{}
	t.stats.ProcessesEvicted++
	return true
}

// procMove moves one live socket of pid from state `from` to `to`
// (0 for none).
func (t *Tracker) procMove(pid uint32, from, to events.State) {
	if pid == 0 {
		// No process to file it under: only counted.
		if from != 0 {
			t.unowned--
		}
		if to != 0 {
			t.unowned++
		}
		return
	}
	var comm events.Comm
	p := t.lookupProc(pid)
	if p == nil {
		if to == 0 {
			return
		}
		if p = t.proc(pid, comm); p == nil {
			return
		}
	}
	if from != 0 && p.Live[from] > 0 {
		p.Live[from]--
	}
	if to != 0 {
		p.Live[to]++
	}
	p.lastSeen = t.now
}

func (t *Tracker) account(pid uint32, comm events.Comm, st events.State, d time.Duration) {
	if int(st) >= numStates {
		return
	}
	if pid != 0 {
		if p := t.proc(pid, comm); p != nil {
			p.Time[st].Add(d)
		}
	}
	t.commStats(comm).Time[st].Add(d)
}

// commStats returns the aggregate for comm, or for "other" once
// MaxComms distinct names are kept.
func (t *Tracker) commStats(comm events.Comm) *CommStats {
	for i := range t.commHot {
		if h := &t.commHot[i]; h.stats != nil && h.comm == comm {
			return h.stats
		}
	}
	over := t.stats.CommsOverflow
	c := t.commStatsSlow(comm)
	// A name counted under "other" is not cached: each of its events
	// must add to CommsOverflow.
	if t.stats.CommsOverflow == over {
		t.commHot[1], t.commHot[0] = t.commHot[0], commHot{comm, c}
	}
	return c
}

// commHot is a recently used comm's aggregate: hashing the name for every
// record was a tenth of the tracker.
type commHot struct {
	comm  events.Comm
	stats *CommStats
}

func (t *Tracker) commStatsSlow(comm events.Comm) *CommStats {
	b := comm.Bytes()
	if c, ok := t.comms[string(b)]; ok { // no allocation for the lookup
		return c
	}
	name := string(b)
	if len(t.comms) >= t.cfg.MaxComms {
		t.stats.CommsOverflow++
		name = OtherComm
		if c, ok := t.comms[name]; ok {
			return c
		}
	}
	c := &CommStats{}
	t.comms[name] = c
	return c
}

func (t *Tracker) procLeakResolved(pid uint32) {
	if p := t.procs[pid]; p != nil && p.Leaking > 0 {
		p.Leaking--
	}
}

// UnownedSockets counts the live sockets no process is known to own.
func (t *Tracker) UnownedSockets() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.unowned
}
