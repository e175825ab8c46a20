/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * Resets as records of their own (feature "resets"): an RST a socket sends
 * (tcp:tcp_send_reset: an abort such as SO_LINGER {1,0} or close() with
 * unread data, or an answer to a segment the socket cannot take) and one a
 * socket receives (tcp:tcp_receive_reset, before the kernel closes it).
 * The owner is left to user space, which knows the socket; the on-CPU task
 * goes with the record as in every other.
 */
#ifndef TCPSTATED_RESETS_BPF_H
#define TCPSTATED_RESETS_BPF_H

static __always_inline struct record *reserve_reset(__u64 cookie, __u8 state,
						    __u8 direction)
{
	struct record *r = reserve();

	if (!r)
		return 0;
	fill_record(r, RECORD_RESET, bpf_ktime_get_ns(), cookie, 0, 0, 0,
		    state, state);
	r->since_ns = 0;
	r->tw = 0;
	r->aux = direction;
	r->jiffies = 0;
	r->pid = 0;
	r->owner_src = OWNER_UNKNOWN;
	r->flags = 0;
	__builtin_memset(r->comm, 0, COMM_LEN);
	fill_context(r);
	return r;
}

/* A socket's RST: full, timewait, request or listening socket alike, all
 * of which begin with sock_common. */
static __always_inline void emit_reset(const struct sock *sk, __u8 direction)
{
	const struct sock_common *skc = &sk->__sk_common;
	__u8 family = family_of(skc->skc_family), state = skc->skc_state;
	__u16 sport = skc->skc_num, dport = bpf_ntohs(skc->skc_dport);
	struct record *r;

	/* Not --state here: an aborted socket is in CLOSE already, and user
	 * space knows the state it closed from. */
	if (!family || filtered_addr(sport, dport, family)) {
		count(COUNTER_FILTERED);
		return;
	}
	r = reserve_reset(bpf_get_socket_cookie((void *)sk), state, direction);
	if (!r)
		return;
	r->family = family;
	r->sport = sport;
	r->dport = dport;
	fill_addrs(r, skc);
	submit(r);
}

/* An RST the kernel sends for a segment no socket takes (a SYN to a closed
 * port): the addresses are the segment's, turned round. */
static __always_inline void emit_reset_nosock(const struct sk_buff *skb)
{
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	__u16 th = BPF_CORE_READ(skb, transport_header);
	struct tcphdr tcp;
	struct record *r;
	__u8 version;

	if (bpf_probe_read_kernel(&version, 1, head + nh) ||
	    bpf_probe_read_kernel(&tcp, sizeof(tcp), head + th))
		return;
	version >>= 4;
	if (version != 4 && version != 6)
		return;
	if (filtered_addr(bpf_ntohs(tcp.dest), bpf_ntohs(tcp.source), version)) {
		count(COUNTER_FILTERED);
		return;
	}
	r = reserve_reset(0, TCP_CLOSE, RESET_SENT);
	if (!r)
		return;
	r->family = version;
	__builtin_memset(r->saddr, 0, sizeof(r->saddr));
	__builtin_memset(r->daddr, 0, sizeof(r->daddr));
	if (version == 4) {
		struct iphdr ip = {};

		bpf_probe_read_kernel(&ip, sizeof(ip), head + nh);
		*(__u32 *)r->saddr = ip.daddr;
		*(__u32 *)r->daddr = ip.saddr;
	} else {
		struct ipv6hdr ip6 = {};

		bpf_probe_read_kernel(&ip6, sizeof(ip6), head + nh);
		__builtin_memcpy(r->saddr, &ip6.daddr, 16);
		__builtin_memcpy(r->daddr, &ip6.saddr, 16);
	}
	r->sport = bpf_ntohs(tcp.dest);
	r->dport = bpf_ntohs(tcp.source);
	r->netns = BPF_CORE_READ(skb, dev, nd_net.net, ns.inum);
	submit(r);
}

SEC("tp_btf/tcp_send_reset")
int BPF_PROG(on_send_reset, const struct sock *sk, const struct sk_buff *skb)
{
	if (sk)
		emit_reset(sk, RESET_SENT);
	else if (skb)
		emit_reset_nosock(skb);
	return 0;
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(on_receive_reset, struct sock *sk)
{
	emit_reset(sk, RESET_RECEIVED);
	return 0;
}

#endif
