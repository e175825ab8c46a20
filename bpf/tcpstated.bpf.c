// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * tcpstated: every TCP state change, with the process that owns the socket.
 *
 * sock:inet_sock_set_state (as tp_btf) sees full sockets. A record names
 * the owner only where the kernel runs in the owner's context (connect,
 * listen, close); most transitions run in softirq, where the task on the CPU
 * is not the owner, and user space carries the owner over from the socket's
 * earlier records (or its listener's, or the file table). No per-socket
 * state is kept here: socket storage cost more than the rest of the
 * programs (docs/performance.md).
 *
 * TIME_WAIT lives in a separate inet_timewait_sock that never passes through
 * the tracepoint. Its timer does: timer_start marks its birth and re-arms,
 * timer_expire_entry its natural end, timer_cancel an early end (or the first
 * half of a re-arm, which is why a cancel is only final once the poll
 * iterator finds no re-arm after it).
 */
#include "common.bpf.h"
#include "children.bpf.h"
#include "timewait.bpf.h"
#include "state.bpf.h"
#include "snapshot.bpf.h"
#include "resets.bpf.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";
