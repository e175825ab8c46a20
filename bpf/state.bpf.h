/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * Full sockets' state changes (sock:inet_sock_set_state), and the
 * stand-in that takes the ones the kernel skipped on_state for.
 */
#ifndef TCPSTATED_STATE_BPF_H
#define TCPSTATED_STATE_BPF_H

/* One RECORD_STATE for a full socket. The owner is named only when the
 * change runs in its system call (src != OWNER_UNKNOWN). */
static __always_inline void emit_state(struct sock *sk, struct tcp_sock *tp,
				       __u64 cookie, __u64 now,
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
	fill_record(r, RECORD_STATE, now, cookie, family, sport, dport,
		    oldstate, news);
	r->since_ns = 0; /* user space knows when the old state began */
	r->tw = tw;
	r->aux = aux;
	r->jiffies = 0;
	r->pid = pid;
	r->owner_src = src;
	fill_addrs(r, &sk->__sk_common);
	r->flags = flags;
	r->bytes_acked = tp->bytes_acked;
	r->bytes_received = tp->bytes_received;
	r->srtt_us = tp->srtt_us >> 3; /* kept times 8 */
	r->total_retrans = tp->total_retrans;
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

/* When the child's SYN_RECV began, as an operator means it: when the
 * SYN-ACK went out. The kernel makes the full socket only when the ACK
 * comes (its LISTEN -> SYN_RECV is microseconds before its
 * SYN_RECV -> ESTABLISHED); by then it has timed the SYN-ACK to that ACK
 * as its first RTT sample. No sample (SYN cookies without timestamps):
 * the clone's time. */
static __always_inline __u64 syn_recv_began(struct tcp_sock *tp, __u64 cloned,
					    __u64 now)
{
	__u64 synack = (__u64)(tp->srtt_us >> 3) * 1000;

	if (synack && synack < now && now - synack < cloned)
		return now - synack;
	return cloned;
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

			emit_state(sk, tp, cookie, syn_recv_began(tp, c.ts_ns, now),
				   0, c.listener,
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

	/* Set before the change when an RST or a timeout closes it. */
	emit_state(sk, tp, cookie, now, tw, news == TCP_CLOSE ? sk->sk_err : 0, src,
		   sport, dport, family, oldstate, news, flags);
}

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
 * leaves it in place however many changes it makes. */
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
		/* Full only under a softirq inside an interrupted copy, whose
		 * entries nobody looks for: reuse the top one and keep those
		 * below for the interrupted copy. User space drops the rare
		 * change this reports twice. */
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

#endif
