/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * Accepted children: a child's LISTEN -> SYN_RECV is held until the
 * kernel has set its ports and cookie, and the listener woken for it names
 * which of several SO_REUSEPORT listeners (and so whose process) took it.
 */
#ifndef TCPSTATED_CHILDREN_BPF_H
#define TCPSTATED_CHILDREN_BPF_H

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
	fill_record(r, RECORD_ACCEPT, bpf_ktime_get_ns(), child,
		    family_of(sk->__sk_common.skc_family), h->accepted_port, 0,
		    TCP_LISTEN, TCP_ESTABLISHED);
	r->aux = bpf_get_socket_cookie(sk);
	r->netns = h->accepted_netns;
	r->owner_src = OWNER_UNKNOWN;
	submit(r);
	return 0;
}

#endif
