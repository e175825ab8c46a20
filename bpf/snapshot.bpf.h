/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * The start-up snapshot: the sockets that exist, and which process holds
 * which as a descriptor.
 */
#ifndef TCPSTATED_SNAPSHOT_BPF_H
#define TCPSTATED_SNAPSHOT_BPF_H

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

	/* The port and state are the timewait socket's, or the full one's. */
	fill_record(&r, RECORD_SOCKET, bpf_ktime_get_ns(),
		    bpf_get_socket_cookie(skc), r.family, 0,
		    bpf_ntohs(skc->skc_dport), state, 0);

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
	fill_record(&r, RECORD_FILE, bpf_ktime_get_ns(), r.cookie, r.family,
		    bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport)),
		    bpf_ntohs(sk->__sk_common.skc_dport),
		    sk->__sk_common.skc_state, 0);
	r.pid = task->tgid;
	r.aux = ctx->fd;
	r.owner_src = OWNER_FILE;
	bpf_probe_read_kernel_str(r.comm, sizeof(r.comm), task->comm);

	fill_addrs(&r, &sk->__sk_common);
	fill_context(&r);
	bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
	return 0;
}

#endif
