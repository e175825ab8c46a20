// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * tcpstated: every TCP state change, with the process that owns the socket.
 *
 * sock:inet_sock_set_state (as tp_btf) sees full sockets. A record names
 * the owner only where the kernel runs in the owner's context (connect,
 * listen, close); most transitions run in softirq, where the task on the CPU
 * is not the owner, and user space carries the owner over from the socket's
 * earlier records (or its listener's, or the file table). No per-socket
 * state is kept here: socket storage cost an allocation per socket, a copy
 * per accepted child and an RCU free, about 8% of a loopback churn.
 *
 * TIME_WAIT lives in a separate inet_timewait_sock that never passes through
 * the tracepoint. Its timer does: timer_start marks its birth and re-arms,
 * timer_expire_entry its natural end, timer_cancel an early end (or the first
 * half of a re-arm, which is why a cancel is only final once the poll
 * iterator finds no re-arm after it).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "tcpstated.h"

#define AF_INET 2
#define AF_INET6 10
#define EEXIST 17 /* errno, for bpf_map_update_elem with BPF_NOEXIST */

/* A cancel with no re-arm after it for this long is an early end. */
#define CANCEL_SETTLE_NS 1000000ULL
/* A cancel of a due timer is most likely the expiry taking it off the
 * wheel, with timer_expire_entry to follow; it is an early end only if
 * that has not come after this long. */
#define EXPIRY_SETTLE_NS 1000000000ULL
/* The timewait handoff happens within one tcp_time_wait() call, on one CPU.
 * The cookie names the socket for good, so a handoff with a cookie is
 * matched at any age: the gap is microseconds on hardware, but more than
 * 10 ms was seen under qemu TCG (and a vCPU can be descheduled by its host).
 * Only a timewait socket without a cookie (a full socket that never had one
 * taken) is matched on ports alone, within this window. */
#define HANDOFF_WINDOW_NS 100000000ULL

/* Set from user space before load. */
const volatile __u32 filter_pid = 0;
const volatile __u16 filter_port = 0;
const volatile __u8 filter_family = 0;  /* 0, 4 or 6 */
const volatile __u32 filter_states = 0; /* bit per TCP state, either side */
const volatile __u64 tw_timer_fn = 0;   /* address of tw_timer_handler */
const volatile __u64 wakeup_bytes = 1;  /* wake the reader past this fill */
/* Timewait sockets from before tracing may take this many table slots:
 * the rest is kept for the ones tracing sees born. */
const volatile __u32 max_preexisting_tw = 65536;

/* Written by user space after it measured the kernel's HZ. */
__u32 hz = 0;
/* Timewait sockets from before tracing put in the table. */
__u32 preexisting_tw = 0;
/* Written by the poll iterator: one (jiffies, ns) pair to measure HZ. */
__u64 clock_jiffies = 0;
__u64 clock_ns = 0;
/* Entries in tw_watch, never below the truth: the poll skips its walk of
 * the map's buckets (all of them, empty or not) when there is none. */
__u64 watched = 0;

/* A child's LISTEN -> SYN_RECV, held until its next transition: the
 * kernel sets the child's ports, addresses and cookie only after it. */
struct held_change {
	__u64 ts_ns;
	__u64 listener; /* the listener's cookie; 0: it had none */
};

struct held {
	__u64 sk;
	struct held_change change;
	/* The child whose SYN_RECV -> ESTABLISHED this CPU made last: the
	 * kernel wakes its listener next (tcp_child_process), on this CPU. */
	__u64 accepted;
	__u32 accepted_netns;
	__u16 accepted_port;
	__u16 _pad;
};

struct tw_info {
	__u64 cookie;
	__u64 since_ns;  /* when the current substate began; 0: not seen */
	__u64 cancel_ns; /* timer cancelled at; 0: armed */
	__u16 sport;
	__u16 dport;
	__u8 substate;
	__u8 family;
	__u8 flags;
	__u8 cancel_due; /* the cancelled timer was due: an expiry's detach */
	__u32 netns;
};

/* What timer_start left for the full socket's ->CLOSE that follows it. */
struct handoff {
	__u64 tw;
	__u64 cookie;
	__u64 ts_ns;
	__u16 sport;
	__u16 dport;
	__u8 substate;
	__u8 _pad[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20); /* resized from user space */
} events SEC(".maps");

/* The child's next transition follows on the same CPU in the same
 * softirq, so one slot per CPU holds it; a second child before that (TCP
 * Fast Open children wait in SYN_RECV for the final ACK) moves the first
 * to held_more. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct held);
} held_slot SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* struct sock * */
	__type(value, struct held_change);
} held_more SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 131072); /* resized from user space */
	__type(key, __u64);
	__type(value, struct tw_info);
} timewaits SEC(".maps");

/* Timewait sockets that need the poll iterator: still in the FIN_WAIT2
 * substate (a FIN can switch them silently), or cancelled. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536); /* resized from user space */
	__type(key, __u64);
	__type(value, __u8);
} tw_watch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct handoff);
} handoffs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* Put the shared types in BTF, for bpf2go -type to generate in Go. */
const struct record *unused_record __attribute__((unused));
const enum record_kind *unused_kind __attribute__((unused));
const enum owner_source *unused_owner __attribute__((unused));
const enum record_flag *unused_flag __attribute__((unused));
const enum counter *unused_counter __attribute__((unused));

static __always_inline void count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &idx);

	if (c)
		(*c)++;
}

static __always_inline bool filtered(__u32 pid, __u16 sport, __u16 dport,
				     __u8 family, __u8 olds, __u8 news)
{
	/* An unknown owner passes: user space may know it. */
	if (filter_pid && pid && pid != filter_pid)
		return true;
	if (filter_port && sport != filter_port && dport != filter_port)
		return true;
	if (filter_family && family != filter_family)
		return true;
	if (filter_states &&
	    !(filter_states & ((1U << (olds & 31)) | (1U << (news & 31)))))
		return true;
	return false;
}

static __always_inline struct record *reserve(void)
{
	struct record *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);

	if (!r)
		count(COUNTER_LOST);
	return r;
}

/* Bytes a record takes in the ring: the record and the ring's 8-byte
 * header, 8-byte aligned. */
#define RECORD_SLOT ((sizeof(struct record) + 8 + 7) & ~7ULL)

/* Wake the reader only when the queue crosses a multiple of wakeup_bytes:
 * a wakeup is an IPI (a VM exit under a hypervisor), a wakeup per record
 * costs a quarter of the connection rate, and waking on every record once
 * the reader is behind made it fall further behind. Below the first
 * multiple the reader comes on its own poll interval. */
static __always_inline void submit(struct record *r)
{
	__u64 flags = BPF_RB_NO_WAKEUP;
	__u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);

	if (avail >= wakeup_bytes &&
	    avail / wakeup_bytes != (avail - RECORD_SLOT) / wakeup_bytes)
		flags = BPF_RB_FORCE_WAKEUP;
	bpf_ringbuf_submit(r, flags);
	count(COUNTER_RECORDS);
}

static __always_inline __u8 family_of(__u16 af)
{
	return af == AF_INET ? 4 : af == AF_INET6 ? 6 : 0;
}

/* Addresses and netns from the common part, shared by every socket kind.
 * skc is a BTF pointer: plain loads, which the verifier guards, cost a
 * fraction of bpf_probe_read_kernel calls (a third of on_state's time). */
static __always_inline void fill_addrs(struct record *r,
				       const struct sock_common *skc)
{
	if (r->family == 4) {
		__builtin_memset(r->saddr, 0, sizeof(r->saddr));
		__builtin_memset(r->daddr, 0, sizeof(r->daddr));
		*(__u32 *)r->saddr = skc->skc_rcv_saddr;
		*(__u32 *)r->daddr = skc->skc_daddr;
	} else {
		__u64 *s = (__u64 *)r->saddr, *d = (__u64 *)r->daddr;

		s[0] = *(__u64 *)&skc->skc_v6_rcv_saddr.in6_u.u6_addr32[0];
		s[1] = *(__u64 *)&skc->skc_v6_rcv_saddr.in6_u.u6_addr32[2];
		d[0] = *(__u64 *)&skc->skc_v6_daddr.in6_u.u6_addr32[0];
		d[1] = *(__u64 *)&skc->skc_v6_daddr.in6_u.u6_addr32[2];
	}
	r->netns = skc->skc_net.net->ns.inum;
}

static __always_inline void fill_context(struct record *r)
{
	r->cpu_pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(r->cpu_comm, sizeof(r->cpu_comm));
	r->cpu = bpf_get_smp_processor_id();
}

static __always_inline void watch(__u64 key)
{
	__u8 one = 1;
	long err = bpf_map_update_elem(&tw_watch, &key, &one, BPF_NOEXIST);

	if (!err)
		__sync_fetch_and_add(&watched, 1);
	else if (err != -EEXIST)
		count(COUNTER_WATCH_FULL);
}

static __always_inline void unwatch(__u64 key)
{
	if (!bpf_map_delete_elem(&tw_watch, &key))
		__sync_fetch_and_add(&watched, -1);
}

/* When a timewait socket switched to TIME_WAIT, from its timer: the switch
 * re-armed it for TCP_TIMEWAIT_LEN (60 s) from then. Jiffies are coarse
 * (1/HZ): a switch soon after the FIN_WAIT2 substate began can come out
 * before that, so it is never put before `floor`. */
static __always_inline __u64 switch_time(__u64 now, __u64 now_j, __u64 expires,
					 __u64 floor)
{
	__u32 h = hz;
	__u64 at_j = expires - 60ULL * h;
	__u64 ago, at;

	if (!h || (__s64)(now_j - at_j) < 0)
		return 0;
	ago = (now_j - at_j) * (1000000000ULL / h);
	at = ago < now ? now - ago : 0;
	return at && at < floor ? floor : at;
}

/* One RECORD_STATE for a full socket. The owner is named only when the
 * change runs in its system call (src != OWNER_UNKNOWN). */
static __always_inline void emit_state(struct sock *sk, __u64 cookie, __u64 now,
				       __u64 tw, __u64 aux, __u8 src, __u16 sport,
				       __u16 dport, __u8 family, __u8 oldstate,
				       __u8 news, __u8 flags)
{
	struct record *r;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 pid = src != OWNER_UNKNOWN ? pid_tgid >> 32 : 0;

	if (filtered(pid, sport, dport, family, oldstate, news)) {
		count(COUNTER_FILTERED);
		return;
	}
	r = reserve();
	if (!r)
		return;
	r->kind = RECORD_STATE;
	r->ts_ns = now;
	r->since_ns = 0; /* user space knows when the old state began */
	r->cookie = cookie;
	r->tw = tw;
	r->aux = aux;
	r->jiffies = 0;
	r->pid = pid;
	r->owner_src = src;
	r->family = family;
	r->sport = sport;
	r->dport = dport;
	fill_addrs(r, &sk->__sk_common);
	r->oldstate = oldstate;
	r->newstate = news;
	r->flags = flags;
	r->cpu_pid = pid_tgid >> 32;
	bpf_get_current_comm(r->cpu_comm, sizeof(r->cpu_comm));
	r->cpu = bpf_get_smp_processor_id();
	/* The owner, where named, is the task on the CPU. */
	if (pid)
		__builtin_memcpy(r->comm, r->cpu_comm, COMM_LEN);
	else
		__builtin_memset(r->comm, 0, COMM_LEN);
	submit(r);
}

static __always_inline void handle_state(struct sock *sk, int oldstate,
					int newstate);

/* The kernel does not run a program that is already running on the CPU:
 * a state change in an interrupt that came while on_state ran (a softirq
 * on a socket, over a connect() in process context) would be lost. A
 * second copy runs right after on_state for every change (it is attached
 * after it) and takes the changes on_state did not.
 *
 * on_state pushes each change it takes on a small per-CPU stack; the copy
 * looks for its change from the top and, found, pops it with whatever an
 * interrupt left above it (changes on_state took in an interrupt while the
 * copy itself was running, so that the copy was skipped for them). Not
 * found, on_state was skipped: the copy takes it. Interrupts nest, so an
 * interrupt between the two programs pushes and pops above the change and
 * leaves it in place however many changes it makes. (A flag held while
 * on_state's body ran missed interrupts in the kernel's entry and exit
 * around it, and a ring of recent changes lost the change under a softirq
 * that made more changes than the ring held.) */
#define TAKEN_DEPTH 8

struct taken {
	__u64 change[TAKEN_DEPTH]; /* change_of() */
	__u32 top;
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct taken);
} taken_changes SEC(".maps");

/* One change of one socket. By cookie, not address: a socket freed and
 * allocated again at once (SLAB_TYPESAFE_BY_RCU, per-CPU free lists) makes
 * the same change at the same address a few connections later. Cookies fit
 * in 48 bits (a counter from boot) and the states in the top 16. */
static __always_inline __u64 change_of(struct sock *sk, int oldstate,
				       int newstate)
{
	return bpf_get_socket_cookie(sk) ^
	       ((__u64)((oldstate & 0xff) << 8 | (newstate & 0xff)) << 48);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(on_state, struct sock *sk, int oldstate, int newstate)
{
	__u32 zero = 0, top;
	struct taken *tk = bpf_map_lookup_elem(&taken_changes, &zero);

	if (tk) {
		top = tk->top;
		/* Full only while a softirq runs inside an interrupted copy:
		 * the kernel skips the copy for every change of that softirq,
		 * so their entries are never looked for. Reuse the top one and
		 * keep those below, which the interrupted copy still looks for
		 * (starting over at 0 lost them, and the copy reported its
		 * change a second time, some 0.8 ms late). Entries can still
		 * be left behind by a softirq that comes in the kernel's exit
		 * from the copy, after it popped; once they fill the stack, a
		 * change whose copy is interrupted may be reported twice
		 * (a few in ten million under bench churn). */
		if (top >= TAKEN_DEPTH)
			top = TAKEN_DEPTH - 1;
		tk->change[top] = change_of(sk, oldstate, newstate);
		tk->top = top + 1;
	}
	handle_state(sk, oldstate, newstate);
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(on_state_nested, struct sock *sk, int oldstate, int newstate)
{
	__u32 zero = 0, top;
	struct taken *tk = bpf_map_lookup_elem(&taken_changes, &zero);
	__u64 change;

	if (!tk)
		return 0;
	change = change_of(sk, oldstate, newstate);
	top = tk->top;
	for (int i = TAKEN_DEPTH - 1; i >= 0; i--) {
		if (i >= top)
			continue;
		if (tk->change[i] == change) {
			tk->top = i; /* on_state took it */
			return 0;
		}
	}
	count(COUNTER_STATE_NESTED);
	handle_state(sk, oldstate, newstate);
	return 0;
}

/* Holds a child's LISTEN -> SYN_RECV; the held one it displaces, if any,
 * moves to held_more. The child is still a byte copy of its listener here
 * (inet_csk_clone_lock sets the child's own cookie right after this
 * change), so its cookie field is the listener's: which of several
 * SO_REUSEPORT listeners the kernel chose, and so whose process accepts. */
static __always_inline void hold_child(struct sock *sk, __u64 now)
{
	__u32 zero = 0;
	struct held *h = bpf_map_lookup_elem(&held_slot, &zero);

	if (!h)
		return;
	if (h->sk && bpf_map_update_elem(&held_more, &h->sk, &h->change, BPF_ANY))
		count(COUNTER_HELD_FULL);
	h->sk = (__u64)sk;
	h->change.ts_ns = now;
	h->change.listener = sk->__sk_common.skc_cookie.counter;
	/* The listener is woken for this child next: right after this change
	 * for a TCP Fast Open child (queued at its SYN), after its
	 * SYN_RECV -> ESTABLISHED otherwise, which sets these again. Where
	 * the kernel has not set the child's cookie yet (6.1) this is the
	 * listener's, under which no child waits in user space. */
	h->accepted = sk->__sk_common.skc_cookie.counter;
	h->accepted_port = sk->__sk_common.skc_num;
	h->accepted_netns = sk->__sk_common.skc_net.net->ns.inum;
}

/* This child's held LISTEN -> SYN_RECV, if any (ts_ns 0: none). */
static __always_inline struct held_change take_held(struct sock *sk)
{
	__u32 zero = 0;
	struct held *h = bpf_map_lookup_elem(&held_slot, &zero);
	struct held_change c = {}, *more;
	__u64 key = (__u64)sk;

	if (h && h->sk == key) {
		h->sk = 0;
		return h->change;
	}
	more = bpf_map_lookup_elem(&held_more, &key);
	if (!more)
		return c;
	c = *more;
	bpf_map_delete_elem(&held_more, &key);
	return c;
}

static __always_inline void handle_state(struct sock *sk, int oldstate,
					int newstate)
{
	struct tcp_sock *tp;
	__u64 now, cookie, tw = 0;
	__u32 zero = 0;
	__u16 sport, dport;
	__u8 family, news = newstate, flags = 0, src = OWNER_UNKNOWN;

	if (sk->sk_protocol != IPPROTO_TCP)
		return; /* MPTCP (262) and others share the tracepoint */
	family = family_of(sk->__sk_common.skc_family);
	if (!family)
		return;

	now = bpf_ktime_get_ns();
	if (oldstate == TCP_LISTEN && newstate == TCP_SYN_RECV) {
		hold_child(sk, now);
		return;
	}

	/* Take the cookie early: the timewait socket inherits it. */
	cookie = bpf_get_socket_cookie(sk);
	tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return;
	sport = bpf_ntohs(tp->inet_conn.icsk_inet.inet_sport);
	dport = bpf_ntohs(sk->__sk_common.skc_dport);
	if (oldstate == TCP_SYN_RECV) {
		struct held_change c = take_held(sk);

		if (c.ts_ns) {
			struct held *h = bpf_map_lookup_elem(&held_slot, &zero);

			emit_state(sk, cookie, c.ts_ns, 0, c.listener,
				   OWNER_UNKNOWN, sport, dport, family,
				   TCP_LISTEN, TCP_SYN_RECV, 0);
			if (h && newstate == TCP_ESTABLISHED) {
				h->accepted = cookie;
				h->accepted_port = sport;
				h->accepted_netns = sk->__sk_common.skc_net.net->ns.inum;
			}
		}
	}

	/* Only these run in the owner's own system call. */
	if (newstate == TCP_SYN_SENT)
		src = OWNER_CONNECT;
	else if (newstate == TCP_LISTEN)
		src = OWNER_LISTEN;
	else if (newstate == TCP_FIN_WAIT1 || newstate == TCP_LAST_ACK)
		src = OWNER_CLOSE;

	if (newstate == TCP_CLOSE &&
	    (oldstate == TCP_FIN_WAIT2 || oldstate == TCP_CLOSING)) {
		struct handoff *h = bpf_map_lookup_elem(&handoffs, &zero);

		if (h && h->tw && h->sport == sport && h->dport == dport &&
		    (h->cookie ? h->cookie == cookie :
				 now - h->ts_ns < HANDOFF_WINDOW_NS)) {
			struct tw_info *info;

			tw = h->tw;
			h->tw = 0;
			info = bpf_map_lookup_elem(&timewaits, &tw);
			if (info) {
				info->cookie = cookie;
				info->netns = sk->__sk_common.skc_net.net->ns.inum;
			}
			if (h->substate != TCP_TIME_WAIT)
				return; /* FIN_WAIT2 goes on in the timewait socket */
			news = TCP_TIME_WAIT;
			flags |= FLAG_TIMEWAIT;
		}
	}

	emit_state(sk, cookie, now, tw, 0, src, sport, dport, family, oldstate,
		   news, flags);
}

/* A listener is woken for the child this CPU just established: name the
 * listener, so that user space knows whose process accepts it when
 * several listen on its port. The same wake-up runs for every socket that
 * receives data; those return at the first test. */
SEC("tp_btf/sk_data_ready")
int BPF_PROG(on_data_ready, struct sock *sk)
{
	__u32 zero = 0;
	struct held *h;
	struct record *r;
	__u64 child;

	if (sk->__sk_common.skc_state != TCP_LISTEN)
		return 0;
	h = bpf_map_lookup_elem(&held_slot, &zero);
	if (!h || !h->accepted)
		return 0;
	child = h->accepted;
	h->accepted = 0;
	if (sk->__sk_common.skc_num != h->accepted_port ||
	    sk->__sk_common.skc_net.net->ns.inum != h->accepted_netns ||
	    sk->sk_protocol != IPPROTO_TCP)
		return 0;
	r = reserve();
	if (!r)
		return 0;
	__builtin_memset(r, 0, sizeof(*r));
	r->kind = RECORD_ACCEPT;
	r->ts_ns = bpf_ktime_get_ns();
	r->cookie = child;
	r->aux = bpf_get_socket_cookie(sk);
	r->family = family_of(sk->__sk_common.skc_family);
	r->sport = h->accepted_port;
	r->netns = h->accepted_netns;
	r->oldstate = TCP_LISTEN;
	r->newstate = TCP_ESTABLISHED;
	r->owner_src = OWNER_UNKNOWN;
	submit(r);
	return 0;
}

/* The timewait socket whose timer this is, or 0. */
static __always_inline __u64 timewait_of(struct timer_list *timer)
{
	if (!tw_timer_fn || (__u64)timer->function != tw_timer_fn)
		return 0;
	return (__u64)timer -
	       bpf_core_field_offset(struct inet_timewait_sock, tw_timer);
}

/* Whether tw_info still describes the timewait socket at its address. */
static __always_inline bool same_timewait(struct inet_timewait_sock *tw,
					  const struct tw_info *info)
{
	__u64 cookie = BPF_CORE_READ(tw, __tw_common.skc_cookie.counter);

	/* A cookie of 0 (none was ever taken) tells nothing: info->cookie
	 * is then the full socket's, set at the handoff. */
	if (cookie && cookie != info->cookie)
		return false;
	return bpf_ntohs(BPF_CORE_READ(tw, tw_sport)) == info->sport &&
	       bpf_ntohs(BPF_CORE_READ(tw, __tw_common.skc_dport)) == info->dport;
}

/* A record about a timewait socket, from what tw_info remembers. */
static __always_inline void emit_tw(__u8 kind, __u64 key,
				    const struct tw_info *info, __u8 olds,
				    __u8 news, __u8 flags, __u64 ts,
				    __u64 since, __u64 expires)
{
	struct record *r;

	if (filtered(0, info->sport, info->dport, info->family, olds,
		     news)) {
		count(COUNTER_FILTERED);
		return;
	}
	r = reserve();
	if (!r)
		return;
	r->kind = kind;
	r->ts_ns = ts;
	r->since_ns = since;
	r->cookie = info->cookie;
	r->tw = key;
	r->aux = expires;
	r->jiffies = bpf_jiffies64();
	/* The owner is the full socket's: user space knows it by cookie. */
	r->pid = 0;
	r->owner_src = OWNER_UNKNOWN;
	__builtin_memset(r->comm, 0, COMM_LEN);
	r->family = info->family;
	r->sport = info->sport;
	r->dport = info->dport;
	r->netns = info->netns;
	/* Addresses are left to user space, which knows them by cookie: a
	 * cancelled timewait socket may already be freed. */
	__builtin_memset(r->saddr, 0, sizeof(r->saddr));
	__builtin_memset(r->daddr, 0, sizeof(r->daddr));
	r->oldstate = olds;
	r->newstate = news;
	r->flags = flags | (info->flags & FLAG_PREEXISTING);
	fill_context(r);
	submit(r);
}

SEC("tp_btf/timer_start")
int BPF_PROG(on_timer_start, struct timer_list *timer)
{
	struct inet_timewait_sock *tw;
	struct tw_info *info;
	__u64 key = timewait_of(timer), now;
	__u32 zero = 0;
	__u8 sub;

	if (!key)
		return 0;
	tw = (void *)key;
	now = bpf_ktime_get_ns();
	sub = BPF_CORE_READ(tw, tw_substate);

	info = bpf_map_lookup_elem(&timewaits, &key);
	if (info && !same_timewait(tw, info)) {
		/* A new timewait socket in the slot of one that ended early
		 * (cancelled: reuse, RST, ss -K) before the poll iterator
		 * finalized it: SLAB_TYPESAFE_BY_RCU hands the address out
		 * again at once, e.g. under tcp_tw_reuse. A birth, not a
		 * re-arm: end the old one first. */
		emit_tw(RECORD_TW_END, key, info, info->substate, TCP_CLOSE,
			FLAG_ENDED_EARLY, info->cancel_ns ? info->cancel_ns : now,
			info->since_ns, 0);
		bpf_map_delete_elem(&timewaits, &key);
		info = NULL;
	}
	if (!info) {
		/* Born in tcp_time_wait(); the full socket's ->CLOSE follows
		 * on this CPU and claims the handoff. */
		struct tw_info fresh = {};
		struct handoff *h;

		fresh.cookie = BPF_CORE_READ(tw, __tw_common.skc_cookie.counter);
		fresh.since_ns = now;
		fresh.substate = sub;
		fresh.family = family_of(BPF_CORE_READ(tw, __tw_common.skc_family));
		fresh.sport = bpf_ntohs(BPF_CORE_READ(tw, tw_sport));
		fresh.dport = bpf_ntohs(BPF_CORE_READ(tw, __tw_common.skc_dport));
		if (bpf_map_update_elem(&timewaits, &key, &fresh, BPF_NOEXIST)) {
			/* Not followed: the full socket's ->CLOSE is reported
			 * as the kernel made it. */
			count(COUNTER_TW_FULL);
			return 0;
		}
		if (sub == TCP_FIN_WAIT2)
			watch(key);

		h = bpf_map_lookup_elem(&handoffs, &zero);
		if (h) {
			h->tw = key;
			h->cookie = fresh.cookie;
			h->ts_ns = now;
			h->sport = fresh.sport;
			h->dport = fresh.dport;
			h->substate = sub;
		}
		return 0;
	}

	/* Re-armed: a FIN (FIN_WAIT2 -> TIME_WAIT) or a retransmitted one. */
	info->cancel_ns = 0;
	if (info->substate != sub) {
		emit_tw(RECORD_TW_SUBSTATE, key, info, info->substate, sub, 0,
			now, info->since_ns, BPF_CORE_READ(tw, tw_timer.expires));
		info->substate = sub;
		info->since_ns = now;
	}
	if (sub != TCP_FIN_WAIT2)
		unwatch(key);
	return 0;
}

SEC("tp_btf/timer_cancel")
int BPF_PROG(on_timer_cancel, struct timer_list *timer)
{
	struct tw_info *info;
	__u64 key = timewait_of(timer);

	if (!key)
		return 0;
	info = bpf_map_lookup_elem(&timewaits, &key);
	if (!info)
		return 0;
	/* Final only if no re-arm follows; the poll iterator decides. */
	info->cancel_ns = bpf_ktime_get_ns();
	info->cancel_due = (__s64)(bpf_jiffies64() - timer->expires) >= 0;
	watch(key);
	return 0;
}

/* A timewait socket ends; `at` is when. A substate switch that nobody saw
 * is reported first, with its time taken from the timer. */
static __always_inline void end_timewait(__u64 key, struct tw_info *info,
					 __u8 sub, __u8 flags, __u64 at,
					 __u64 expires, __u64 now)
{
	__u64 since = info->since_ns;

	if (info->substate != sub) {
		__u64 switched = switch_time(now, bpf_jiffies64(), expires,
					     since);

		emit_tw(RECORD_TW_SUBSTATE, key, info, info->substate, sub,
			FLAG_SWITCH_DERIVED, switched ? switched : at, since,
			expires);
		since = switched;
	}
	emit_tw(RECORD_TW_END, key, info, sub, TCP_CLOSE, flags, at, since,
		expires);
	bpf_map_delete_elem(&timewaits, &key);
	unwatch(key);
}

SEC("tp_btf/timer_expire_entry")
int BPF_PROG(on_timer_expire, struct timer_list *timer)
{
	struct inet_timewait_sock *tw;
	struct tw_info *info;
	__u64 key = timewait_of(timer), now;

	if (!key)
		return 0;
	info = bpf_map_lookup_elem(&timewaits, &key);
	if (!info)
		return 0; /* the table was full at its birth: counted then */
	tw = (void *)key;
	now = bpf_ktime_get_ns();
	end_timewait(key, info, BPF_CORE_READ(tw, tw_substate), FLAG_EXPIRED,
		     now, BPF_CORE_READ(tw, tw_timer.expires), now);
	return 0;
}

/*
 * One watched timewait socket, for poll_timewaits: finalizes a cancelled
 * one and finds a substate switch that re-armed the timer within its wheel
 * bucket (no tracepoint fires then).
 */
static long poll_one(struct bpf_map *map, const __u64 *keyp, __u8 *val,
		     void *ctx)
{
	struct inet_timewait_sock *tw;
	struct tw_info *info;
	__u64 key = *keyp, now = bpf_ktime_get_ns();
	__u8 sub;

	info = bpf_map_lookup_elem(&timewaits, &key);
	if (!info) {
		unwatch(key);
		return 0;
	}
	tw = (void *)key;
	if (info->cancel_ns) {
		/* Signed: the cancel may have come on another CPU after
		 * `now` was read. */
		__s64 age = now - info->cancel_ns;

		/* A re-arm takes the timer off the wheel and puts it back
		 * (timer_cancel, then timer_start) but keeps it pending
		 * throughout; a delete or an expiry does not. The CPU doing
		 * it can be held up between the two (a vCPU the host does
		 * not run), so a pending timer is never called ended. */
		if (BPF_CORE_READ(tw, tw_timer.entry.pprev) &&
		    same_timewait(tw, info))
			return 0;
		if (age < (__s64)(info->cancel_due ? EXPIRY_SETTLE_NS :
						     CANCEL_SETTLE_NS))
			return 0; /* a re-arm or the expiry may still come */
		/* Freed or about to be: trust what tw_info remembers. */
		emit_tw(RECORD_TW_END, key, info, info->substate, TCP_CLOSE,
			FLAG_ENDED_EARLY, info->cancel_ns, info->since_ns, 0);
		bpf_map_delete_elem(&timewaits, &key);
		unwatch(key);
		return 0;
	}
	/* Armed, so alive; guard against a recycled slot all the same. */
	if (!same_timewait(tw, info)) {
		unwatch(key);
		return 0;
	}
	sub = BPF_CORE_READ(tw, tw_substate);
	if (sub != info->substate) {
		__u64 expires = BPF_CORE_READ(tw, tw_timer.expires);
		__u64 switched = switch_time(now, bpf_jiffies64(), expires,
					     info->since_ns);

		emit_tw(RECORD_TW_SUBSTATE, key, info, info->substate, sub,
			FLAG_SWITCH_DERIVED, switched ? switched : now,
			info->since_ns, expires);
		info->substate = sub;
		info->since_ns = switched;
	}
	if (sub != TCP_FIN_WAIT2)
		unwatch(key);
	return 0;
}

/*
 * Run by user space every poll interval: walks tw_watch with poll_one.
 * A task iterator is only the trigger (user space walks one task, or all
 * where the kernel cannot filter): its programs load where map-element
 * iterators are refused (some LSM policies), and the walk reads timewait
 * sockets by address, so it covers every network namespace.
 */
SEC("iter/task")
int poll_timewaits(struct bpf_iter__task *ctx)
{
	if (ctx->task)
		return 0; /* the end of the walk is the trigger */
	if (watched)
		bpf_for_each_map_elem(&tw_watch, poll_one, NULL, 0);
	/* A clock sample for measuring HZ. */
	clock_jiffies = bpf_jiffies64();
	clock_ns = bpf_ktime_get_ns();
	return 0;
}

/* Start-up snapshot of every TCP socket in this network namespace. */
SEC("iter/tcp")
int snapshot_sockets(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct record r = {};
	__u8 state;

	if (!skc)
		return 0;
	r.family = family_of(skc->skc_family);
	state = skc->skc_state;
	if (!r.family || state == TCP_NEW_SYN_RECV)
		return 0; /* request sockets are not sockets yet */

	r.kind = RECORD_SOCKET;
	r.ts_ns = bpf_ktime_get_ns();
	r.cookie = bpf_get_socket_cookie(skc);
	r.dport = bpf_ntohs(skc->skc_dport);

	if (state == TCP_TIME_WAIT) {
		struct tcp_timewait_sock *ttw = bpf_skc_to_tcp_timewait_sock(skc);
		struct tw_info *info, fresh = {};
		__u64 key;

		if (!ttw)
			return 0;
		key = (__u64)ttw;
		r.sport = bpf_ntohs(ttw->tw_sk.tw_sport);
		r.oldstate = ttw->tw_sk.tw_substate;
		r.flags = FLAG_TIMEWAIT;
		r.tw = key;
		r.aux = ttw->tw_sk.tw_timer.expires;
		r.jiffies = bpf_jiffies64();
		info = bpf_map_lookup_elem(&timewaits, &key);
		if (info) {
			r.since_ns = info->since_ns;
		} else if (preexisting_tw >= max_preexisting_tw) {
			count(COUNTER_TW_OLD_SKIPPED);
			r.flags |= FLAG_PREEXISTING | FLAG_UNFOLLOWED;
		} else {
			/* From before tracing: follow its end from now on. */
			preexisting_tw++;
			fresh.cookie = r.cookie;
			fresh.substate = r.oldstate;
			fresh.family = r.family;
			fresh.sport = r.sport;
			fresh.dport = r.dport;
			fresh.flags = FLAG_PREEXISTING;
			fresh.netns = BPF_CORE_READ(skc, skc_net.net, ns.inum);
			r.flags |= FLAG_PREEXISTING;
			if (bpf_map_update_elem(&timewaits, &key, &fresh,
						BPF_NOEXIST)) {
				count(COUNTER_TW_FULL);
				r.flags |= FLAG_UNFOLLOWED;
			} else if (fresh.substate == TCP_FIN_WAIT2) {
				watch(key);
			}
		}
	} else {
		struct tcp_sock *tp = bpf_skc_to_tcp_sock(skc);

		if (!tp)
			return 0;
		/* Its owner comes from the file table walk; when its state
		 * began, nobody knows (since_ns 0). */
		r.sport = bpf_ntohs(tp->inet_conn.icsk_inet.inet_sport);
		r.oldstate = state;
	}
	fill_addrs(&r, skc);
	fill_context(&r);
	bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
	return 0;
}

/* Which process holds which TCP socket, as which descriptor. */
SEC("iter/task_file")
int snapshot_files(struct bpf_iter__task_file *ctx)
{
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	struct socket *sock;
	struct sock *sk;
	struct record r = {};

	if (!task || !file)
		return 0;
	sock = bpf_sock_from_file(file);
	if (!sock)
		return 0;
	sk = sock->sk;
	if (!sk || sk->sk_protocol != IPPROTO_TCP)
		return 0;
	r.family = family_of(sk->__sk_common.skc_family);
	if (!r.family)
		return 0;

	/* Read, not taken with bpf_get_socket_cookie: the verifier refuses
	 * the helper on this untrusted pointer on some kernels. Every socket
	 * the tracepoint or the start-up snapshot saw has one; one without
	 * (never connected, or in a namespace nobody walked) is not tracked. */
	r.cookie = sk->__sk_common.skc_cookie.counter;
	if (!r.cookie)
		return 0;
	r.kind = RECORD_FILE;
	r.ts_ns = bpf_ktime_get_ns();
	r.pid = task->tgid;
	r.aux = ctx->fd;
	r.owner_src = OWNER_FILE;
	bpf_probe_read_kernel_str(r.comm, sizeof(r.comm), task->comm);
	r.oldstate = sk->__sk_common.skc_state;
	r.sport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	r.dport = bpf_ntohs(sk->__sk_common.skc_dport);

	fill_addrs(&r, &sk->__sk_common);
	fill_context(&r);
	bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
