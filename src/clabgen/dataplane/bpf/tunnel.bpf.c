/* clabgen's BPF tunnel: ipip/gre-style encapsulation at kernel speed without the tunnel modules.
 *
 * A tunnel end is a veth pair in the gateway's namespace: the tunnel device (the tunnel's name,
 * address and MTU, ARP off) and its peer. What the stack routes into the tunnel device meets
 * clabgen_encap on the device's tc egress, which wraps it in the outer header and hands it to the
 * underlay (FIB lookup + bpf_redirect_neigh: the kernel resolves the next hop's MAC) before the
 * device transmits it: no veth crossing, no second pass through the receive backlog (bench:
 * 10-15% more bulk TCP than wrapping at the peer's ingress). The price: taps on the tunnel device
 * (tcpdump, clabgen capture) see only what it receives, as the wrapped packet never reaches its
 * transmit. On every other interface of the namespace clabgen_decap (tc ingress) takes the packets
 * a tunnel end would accept, unwraps them and sends them out of that end's peer, so they arrive on
 * the tunnel device (counted there, seen by captures, routed by the stack) as from a kernel tunnel.
 *
 * Per tunnel end: map entries (encap_cfg by the tunnel device's ifindex and by its peer's, for
 * what the device's egress cannot wrap; decap_cfg by remote/local/protocol),
 * filled by clabgen.dataplane.bpf.attach; one program load per namespace serves all of its ends.
 * Per tunnel type: TYPES[] in the generated header, printed from clabgen.tunnels (the table is the
 * only place that knows a type's header); nothing here branches on a type's name.
 *
 * Wire format as the kernel's tunnels with `ip tunnel add` defaults (tests/dataplane/test_uml.py):
 * DF set, TTL inherited from the inner packet (or fixed per tunnel), TOS carries the inner ECN only
 * (CE as ECT(0)), the ID counts up per tunnel. A TCP packet of up to 64 KB (GSO) is wrapped whole;
 * the kernel's own ipip/gre segmentation (built in, no module) splits it on the underlay.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Generated from clabgen.tunnels (bpf/source.py): N_TYPES, SHIM_MAX, RX_WORDS_MAX, RX_OPT_MAX and
 * TYPE_ENTRIES, one initializer per tunnel type the BPF tunnel can carry, in the table's order. */
#include "types.h"

/* What the program knows of a tunnel type: the outer protocol, the shim written after the outer
 * header, how the kernel's segmentation must treat it (bpf_skb_adjust_room flags), and the
 * receive rule (fixed words under a mask, optional fields announced by flags in the first word,
 * a checksum flag). */
struct ttype {
	__u64 gso_flags;
	__u8 proto, shim_len, rx_words, rx_opts;
	__u16 rx_csum_flag;
	__u8 shim[SHIM_MAX];
	__u16 rx_mask[RX_WORDS_MAX], rx_value[RX_WORDS_MAX];
	__u16 rx_opt_flag[RX_OPT_MAX];
	__u8 rx_opt_len[RX_OPT_MAX];
};

static const struct ttype TYPES[N_TYPES] = { TYPE_ENTRIES };

#define ETH_HLEN_ 14
#define IP_DF_ 0x4000
#define IP_FRAG_ 0x3fff /* MF and the offset: fragments are left to the stack */
#define ECN_MASK 3
#define ECN_CE 3
#define CSUM_CHUNK 128
#define CSUM_CHUNKS 513 /* covers 64 KB + headers */

struct encap_cfg {          /* key: ifindex of the tunnel device (egress), and of its peer (ingress) */
	__be32 local, remote;
	__u32 type;             /* index into TYPES */
	__u32 peer_ifindex;     /* the device's veth peer: the FIB lookup's input (forwarding is on there) */
	__u8 ttl;               /* 0: inherit the inner TTL */
	__u8 tap;               /* device entry: a capture watches it, egress lets packets through */
	__u8 pad[2];
	__u32 id;               /* next outer IP ID */
	__u64 packets, bytes, dropped;
};

struct decap_key {
	__be32 remote, local;
	__u32 proto;
};

struct decap_cfg {
	__u32 type;
	__u32 peer_ifindex;     /* unwrapped packets leave here and arrive on the tunnel device */
	__u32 tun_ifindex;
	__u8 mac[6];            /* the tunnel device's address: the frame is for it */
	__u8 pad[6];
	__u64 packets, bytes, dropped;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct encap_cfg);
} encap_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct decap_key);
	__type(value, struct decap_cfg);
} decap_cfg SEC(".maps");

static __always_inline __u16 fold(__u64 s)
{
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

/* Point data at the packet with its first `n` bytes directly readable, or go to `fail`. */
#define LINEAR(skb, data, n, fail)                                                        \
	do {                                                                              \
		data = (void *)(long)skb->data;                                           \
		if (data + (n) > (void *)(long)skb->data_end) {                         \
			if (skb->len < (n) || bpf_skb_pull_data(skb, (n)))             \
				goto fail;                                                \
			data = (void *)(long)skb->data;                                   \
			if (data + (n) > (void *)(long)skb->data_end)                   \
				goto fail;                                                \
		}                                                                         \
	} while (0)

SEC("tc")
int clabgen_encap(struct __sk_buff *skb)
{
	__u32 key = skb->ifindex;
	struct encap_cfg *c = bpf_map_lookup_elem(&encap_cfg, &key);
	if (!c)
		return TC_ACT_SHOT;
	/* A capture on the tunnel device (clabgen capture) would not see what egress wraps and sends
	 * away before the device's taps: while it runs, packets cross the veth and the peer's ingress
	 * (its own entry, never tapped) wraps them. */
	if (c->tap)
		return TC_ACT_OK;
	__u32 ti = c->type;
	if (ti >= N_TYPES)
		return TC_ACT_SHOT;
	const struct ttype *t = &TYPES[ti];
	void *data;
	if (skb->protocol != bpf_htons(ETH_P_IP))
		goto drop; /* the kernel's tunnels carry IPv4 only here */
	LINEAR(skb, data, ETH_HLEN_ + 20, drop);
	struct iphdr *in = data + ETH_HLEN_;
	__u8 ecn = in->tos & ECN_MASK, ttl = in->ttl;
	__u32 hlen = 20 + t->shim_len;
	/* A GSO packet is wrapped whole and marked so the kernel can split it later; the marks stay
	 * on the skb, so a packet that was in a tunnel before (a hub forwarding spoke to spoke) cannot
	 * get them twice. On the tunnel device's egress such a packet is let through: the device does
	 * not offer tunnel segmentation (ends.py), so the kernel splits it on transmit and the pieces
	 * meet this program again on the peer's ingress (its own encap_cfg entry), as plain packets. */
	__u64 flags = skb->gso_size ? BPF_F_ADJ_ROOM_FIXED_GSO | t->gso_flags : 0;
	if (bpf_skb_adjust_room(skb, hlen, BPF_ADJ_ROOM_MAC, flags)) {
		if (skb->gso_size && skb->ifindex != c->peer_ifindex)
			return TC_ACT_OK;
		goto drop;
	}
	LINEAR(skb, data, ETH_HLEN_ + 20 + SHIM_MAX + 20, drop);
	/* bpf_redirect_neigh drops a frame addressed to a multicast MAC, as OSPF's hellos leave tun0;
	 * the neighbour code writes the real header, so any unicast address will do: tun0's own. */
	__u8 *eth = data;
	if (eth[0] & 1)
		__builtin_memcpy(eth, eth + 6, 6);
	struct iphdr *o = data + ETH_HLEN_;
	__u32 total = skb->len - ETH_HLEN_;
	o->version = 4;
	o->ihl = 5;
	o->tos = ecn == ECN_CE ? 2 : ecn; /* RFC 6040: CE is not copied out */
	o->tot_len = bpf_htons(total > 0xffff ? 0xffff : total); /* segmentation rewrites it per packet */
	o->id = bpf_htons((__u16)__sync_fetch_and_add(&c->id, skb->gso_segs ? skb->gso_segs : 1));
	o->frag_off = bpf_htons(IP_DF_);
	o->ttl = c->ttl ? c->ttl : ttl;
	o->protocol = t->proto;
	o->check = 0;
	o->saddr = c->local;
	o->daddr = c->remote;
	__u8 *shim = (__u8 *)(o + 1);
#pragma unroll
	for (int i = 0; i < SHIM_MAX; i++)
		if (i < t->shim_len)
			shim[i] = t->shim[i];
	__u64 sum = 0;
	__u16 *w = (__u16 *)o;
#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += w[i];
	o->check = ~fold(sum);

	/* The outer packet goes where the routing table sends the remote (as the kernel's tunnel,
	 * per packet), looked up as if it came in on the peer (forwarding is on there; an output
	 * lookup would be bound to the device it names). */
	struct bpf_fib_lookup f = { .family = 2, .ipv4_src = c->local, .ipv4_dst = c->remote,
				    .ifindex = c->peer_ifindex, .tot_len = 20 };
	int rc = bpf_fib_lookup(skb, &f, sizeof(f), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		goto drop;
	__sync_fetch_and_add(&c->packets, skb->gso_segs ? skb->gso_segs : 1);
	__sync_fetch_and_add(&c->bytes, total - hlen);
	struct bpf_redir_neigh nh = { .nh_family = 2, .ipv4_nh = f.ipv4_dst };
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		/* The kernel holds the packet until ARP answers, then sends it by the packet's route,
		 * which on the tunnel device's egress is still the inner one (via tunN): it would leave
		 * with tunN's own MAC as destination and be lost. Without a next hop the kernel looks
		 * the outer route up and sets it. */
		return bpf_redirect_neigh(f.ifindex, NULL, 0, 0);
	return bpf_redirect_neigh(f.ifindex, &nh, sizeof(nh), 0);
drop:
	__sync_fetch_and_add(&c->dropped, 1);
	return TC_ACT_SHOT;
}

struct csum_walk {
	struct __sk_buff *skb;
	__u32 off, len;
	__s64 sum;
	int bad;
};

/* One bpf_loop step: the next whole chunk into the sum; 1 ends the walk. The verifier checks
 * this once, not once per chunk (a plain loop made loading the program six times slower). */
static long csum_chunk(__u32 i, void *data)
{
	struct csum_walk *w = data;
	__u8 buf[CSUM_CHUNK];
	if (w->off + CSUM_CHUNK > w->len)
		return 1;
	if (bpf_skb_load_bytes(w->skb, w->off, buf, CSUM_CHUNK)) {
		w->bad = 1;
		return 1;
	}
	w->sum = bpf_csum_diff(0, 0, (void *)buf, CSUM_CHUNK, (__u32)w->sum);
	if (w->sum < 0) {
		w->bad = 1;
		return 1;
	}
	w->off += CSUM_CHUNK;
	return 0;
}

/* The one's complement sum of everything from `off` to the end is 0xffff (a valid checksum):
 * whole chunks first, then the tail, zero-padded to a multiple of 4 (csum_diff's unit). */
static __always_inline int csum_valid(struct __sk_buff *skb, __u32 off)
{
	struct csum_walk w = { .skb = skb, .off = off, .len = skb->len };
	__u8 buf[CSUM_CHUNK];
	bpf_loop(CSUM_CHUNKS, csum_chunk, &w, 0);
	if (w.bad || w.off + CSUM_CHUNK <= w.len)
		return 0; /* unreadable, or longer than any packet the walk was sized for */
	__u32 n = w.len - w.off;
	__s64 sum = w.sum;
	if (n) {
		__builtin_memset(buf, 0, CSUM_CHUNK);
		n &= CSUM_CHUNK - 1;
		__u32 padded = (n + 3) & ~3u;
		if (n == 0 || padded > CSUM_CHUNK || bpf_skb_load_bytes(skb, w.off, buf, n))
			return 0;
		sum = bpf_csum_diff(0, 0, (void *)buf, padded, (__u32)sum);
		if (sum < 0)
			return 0;
	}
	return fold((__u64)(__u32)sum) == 0xffff;
}

/* Length of the shim in front of the inner packet if the type's receive rule accepts it, else -1:
 * fixed 16-bit words checked under a mask, optional fields announced by flags in the first word,
 * and a checksum over shim and payload when its flag is set (clabgen.tunnels' rx_* fields). */
static __always_inline int shim_length(struct __sk_buff *skb, const struct ttype *t, __u32 at)
{
	__u16 words[RX_WORDS_MAX] = {};
	__u32 n = t->rx_words;
	if (n > RX_WORDS_MAX)
		return -1;
	/* the inner packet follows the shim, so these bytes are there whatever the type */
	if (n && bpf_skb_load_bytes(skb, at, words, sizeof(words)))
		return -1;
	__u16 first = bpf_ntohs(words[0]);
#pragma unroll
	for (int i = 0; i < RX_WORDS_MAX; i++)
		if (i < n && (bpf_ntohs(words[i]) & t->rx_mask[i]) != t->rx_value[i])
			return -1;
	int len = t->shim_len;
#pragma unroll
	for (int i = 0; i < RX_OPT_MAX; i++)
		if (i < t->rx_opts && (first & t->rx_opt_flag[i]))
			len += t->rx_opt_len[i];
	if (n && t->rx_csum_flag && (first & t->rx_csum_flag) && (skb->gso_size || !csum_valid(skb, at)))
		return -1; /* a checked GRE checksum needs the whole packet: not on a GSO one */
	return len;
}

SEC("tc")
int clabgen_decap(struct __sk_buff *skb)
{
	void *data;
	if (skb->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	LINEAR(skb, data, ETH_HLEN_ + 20, pass);
	struct iphdr *o = data + ETH_HLEN_;
	if (o->version != 4 || o->ihl < 5 || (o->frag_off & bpf_htons(IP_FRAG_)))
		return TC_ACT_OK;
	struct decap_key k = { .remote = o->saddr, .local = o->daddr, .proto = o->protocol };
	__u8 outer_ecn = o->tos & ECN_MASK;
	__u32 olen = o->ihl * 4;
	struct decap_cfg *c = bpf_map_lookup_elem(&decap_cfg, &k);
	if (!c)
		return TC_ACT_OK; /* not for one of our tunnel ends: the stack decides */
	__u32 ti = c->type;
	if (ti >= N_TYPES)
		return TC_ACT_OK;
	const struct ttype *t = &TYPES[ti];
	int shim = shim_length(skb, t, ETH_HLEN_ + olen);
	if (shim < 0 || shim > 64)
		goto drop;
	__u32 strip = olen + shim;
	if (strip > 124)
		goto drop;
	__u8 inner[2];
	__u32 at = ETH_HLEN_ + strip;
	if (bpf_skb_load_bytes(skb, at, inner, 2) || inner[0] >> 4 != 4)
		goto drop;
	if (outer_ecn == ECN_CE && (inner[1] & ECN_MASK) != ECN_CE) { /* RFC 6040 decapsulation */
		if (!(inner[1] & ECN_MASK))
			goto drop;
		__u8 tos = inner[1] | ECN_CE;
		bpf_l3_csum_replace(skb, at + 10, bpf_htons(inner[0] << 8 | inner[1]), bpf_htons(inner[0] << 8 | tos), 2);
		bpf_skb_store_bytes(skb, at + 1, &tos, 1, 0);
	}
	if (bpf_skb_adjust_room(skb, -(__s32)strip, BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_FIXED_GSO))
		goto drop;
	if (bpf_skb_store_bytes(skb, 0, c->mac, 6, 0))
		goto drop;
	__sync_fetch_and_add(&c->packets, skb->gso_segs ? skb->gso_segs : 1);
	__sync_fetch_and_add(&c->bytes, skb->len - ETH_HLEN_);
	return bpf_redirect(c->peer_ifindex, 0);
drop:
	__sync_fetch_and_add(&c->dropped, 1);
	return TC_ACT_SHOT;
pass:
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
