/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * The timewait socket's life, which the state tracepoint never sees: its
 * timer's tracepoints mark its birth, re-arms and end, and the poll
 * iterator finds the substate switches and early ends they do not show.
 */
#ifndef TCPSTATED_TIMEWAIT_BPF_H
#define TCPSTATED_TIMEWAIT_BPF_H

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
const volatile __u64 tw_timer_fn = 0;   /* address of tw_timer_handler */
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
	fill_record(r, kind, ts, info->cookie, info->family, info->sport,
		    info->dport, olds, news);
	r->since_ns = since;
	r->tw = key;
	r->aux = expires;
	r->jiffies = bpf_jiffies64();
	/* The owner is the full socket's: user space knows it by cookie. */
	r->pid = 0;
	r->owner_src = OWNER_UNKNOWN;
	__builtin_memset(r->comm, 0, COMM_LEN);
	r->netns = info->netns;
	/* Addresses are left to user space, which knows them by cookie: a
	 * cancelled timewait socket may already be freed. */
	__builtin_memset(r->saddr, 0, sizeof(r->saddr));
	__builtin_memset(r->daddr, 0, sizeof(r->daddr));
	r->flags = flags | (info->flags & FLAG_PREEXISTING);
	fill_context(r);
	submit(r);
}

/* A substate switch found after it happened (no tracepoint fires when
 * the re-arm stays in its timer wheel bucket): its time comes from the
 * timer it re-armed, or is `at` where that cannot tell. Returns when the
 * switch happened, 0 if not known. */
static __always_inline __u64 emit_found_switch(__u64 key,
					       const struct tw_info *info,
					       __u8 sub, __u64 expires,
					       __u64 now, __u64 at)
{
	__u64 switched = switch_time(now, bpf_jiffies64(), expires,
				     info->since_ns);

	emit_tw(RECORD_TW_SUBSTATE, key, info, info->substate, sub,
		FLAG_SWITCH_DERIVED, switched ? switched : at, info->since_ns,
		expires);
	return switched;
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

	if (info->substate != sub)
		since = emit_found_switch(key, info, sub, expires, now, at);
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
		info->since_ns = emit_found_switch(key, info, sub,
						   BPF_CORE_READ(tw, tw_timer.expires),
						   now, now);
		info->substate = sub;
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

#endif
