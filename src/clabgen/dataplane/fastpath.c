/* clabgen userspace tunnel fast path: the loops of pyloop.py in C, without the GIL.
 *
 * Built at run time by fastpath.py (gcc -O3 -march=native -shared), called through ctypes (which
 * releases the GIL): dp_serve, one call per thread of a small pool (one thread per CPU, pinned by
 * forward.py), each serving its share of the lab's tunnel ends, both directions, through one epoll
 * set: what runs per lab stays the same size however many tunnels it has. Buffers belong to the
 * thread, not to the tunnel end (a batch is always finished before the next fd is served), so a
 * tunnel end costs a few dozen bytes. The raw socket side is batched with recvmmsg/sendmmsg.
 * The TUN fd has IFF_VNET_HDR: decap coalesces consecutive segments of one TCP flow into one
 * GSO packet (what GRO does on a NIC), after checking every segment's checksum, so the gateway
 * forwards and the receiver processes (and acks) one packet instead of up to 64.
 * On the wire nothing changes; wire format and checks are those of wire.py: keep them in step.
 * stop is checked once per round of batches; stop_fd (in the epoll set) wakes an idle thread.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/epoll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define BATCH 64
#define SLOT (65536 + 256)
#define VNET_LEN 10
#define GRO_MAX_SEGS 64
#define GRO_MAX_LEN 65535
/* Decapsulation formats: the tunnel table's c_format (clabgen/tunnels.py C_FORMAT_*). */
#define DP_FORMAT_IPV4 0 /* the inner IPv4 packet follows the outer header */
#define DP_FORMAT_GRE 1  /* RFC 2784 header first: optional checksum and sequence, no key/routing */

/* merged_writes: GSO packets read (encap) or written (decap) instead of single segments */
struct dp_counters { uint64_t packets, bytes, dropped, error, merged_writes; };

/* struct virtio_net_hdr, native endian (tun's default on little-endian hosts) */
struct vnet_hdr {
	uint8_t flags, gso_type;
	uint16_t hdr_len, gso_size, csum_start, csum_offset;
};
#define VNET_F_NEEDS_CSUM 1
#define VNET_GSO_TCPV4 1

/* One's complement sum, folded to 16 bits, in memory (network) order; 0xffff means "valid".
 * 32-bit words into a 64-bit accumulator: no carries to chase (n < 16 GB), and it vectorizes. */
static uint16_t csum16(const uint8_t *p, size_t n, uint64_t s)
{
	for (; n >= 4; p += 4, n -= 4) {
		uint32_t v;
		memcpy(&v, p, 4);
		s += v;
	}
	uint8_t tail[4] = { 0 };
	memcpy(tail, p, n);
	uint32_t v;
	memcpy(&v, tail, 4);
	s += v;
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

static void set_ip_csum(uint8_t *ip)
{
	ip[10] = ip[11] = 0;
	uint16_t v = (uint16_t)~csum16(ip, (size_t)(ip[0] & 0x0f) * 4, 0);
	memcpy(ip + 10, &v, 2);
}

/* Sum of the TCP pseudo header (addresses, protocol, TCP length) of an IPv4 packet. */
static uint16_t pseudo_sum(const uint8_t *ip, size_t tcp_len)
{
	uint8_t ph[12];
	memcpy(ph, ip + 12, 8);
	ph[8] = 0;
	ph[9] = 6;
	ph[10] = tcp_len >> 8;
	ph[11] = tcp_len & 0xff;
	return csum16(ph, 12, 0);
}

static uint8_t encap_tos(uint8_t inner)
{
	uint8_t ecn = inner & 3;
	return ecn == 3 ? 2 : ecn;
}

/* Outgoing messages of one encap batch; a GSO read becomes up to 64 of them. */
#define MAX_MSGS 256
#define HDR_ROOM 160 /* outer (<= 24) + inner IPv4 (<= 60) + TCP (<= 60) headers */

struct txbatch {
	int n;
	struct mmsghdr msgs[MAX_MSGS];
	struct iovec iov[MAX_MSGS][2];
	uint8_t hdrs[MAX_MSGS][HDR_ROOM];
	size_t inner_len[MAX_MSGS];
};

/* Next outer IP ID; never 0, which would ask the kernel to pick one (it picks 0 under DF). */
static uint16_t next_id(uint16_t *id)
{
	if (++*id == 0)
		*id = 1;
	return *id;
}

static void fill_outer(uint8_t *b, const uint8_t *tmpl, int overhead, size_t inner_len, uint16_t id)
{
	size_t total = inner_len + (size_t)overhead;
	memcpy(b, tmpl, overhead);
	b[1] = encap_tos(b[overhead + 1]);
	b[2] = total >> 8;
	b[3] = total & 0xff;
	b[4] = id >> 8;
	b[5] = id & 0xff;
	if (!tmpl[8]) /* ttl 0 in the template: inherit the inner TTL (the kernel's default); else fixed */
		b[8] = b[overhead + 8];
}

static void tx_add(struct txbatch *t, void *a, size_t alen, void *b, size_t blen, size_t inner_len)
{
	int k = t->n++;
	t->iov[k][0] = (struct iovec){ a, alen };
	t->iov[k][1] = (struct iovec){ b, blen };
	t->msgs[k].msg_hdr.msg_iov = t->iov[k];
	t->msgs[k].msg_hdr.msg_iovlen = blen ? 2 : 1;
	t->inner_len[k] = inner_len;
}

/* Split a TSO packet from the TUN into MTU-sized segments, as the kernel's tcp_gso_segment would
 * (IDs and sequence numbers counted up, CWR on the first, FIN/PSH on the last, checksums done). */
static int tso_split(struct txbatch *t, uint8_t *ip, size_t len, size_t mss, const uint8_t *tmpl, int overhead,
		     uint16_t *outer_id)
{
	size_t ihl = (size_t)(ip[0] & 0x0f) * 4;
	if (len < ihl + 20 || ip[9] != 6 || !mss)
		return -1;
	size_t hdr_len = ihl + (size_t)(ip[ihl + 12] >> 4) * 4;
	if (hdr_len > len || hdr_len - ihl < 20 || hdr_len > HDR_ROOM - (size_t)overhead)
		return -1;
	size_t data = len - hdr_len, nseg = (data + mss - 1) / mss;
	if (nseg == 0 || t->n + (int)nseg > MAX_MSGS)
		return -1;
	uint16_t id = (uint16_t)(ip[4] << 8 | ip[5]);
	uint32_t seq = (uint32_t)ip[ihl + 4] << 24 | (uint32_t)ip[ihl + 5] << 16 | (uint32_t)ip[ihl + 6] << 8 | ip[ihl + 7];
	uint8_t flags = ip[ihl + 13];
	for (size_t i = 0; i < nseg; i++) {
		size_t plen = i + 1 < nseg ? mss : data - i * mss;
		uint8_t *h = t->hdrs[t->n];
		uint8_t *in = h + overhead, *th = in + ihl;
		memcpy(in, ip, hdr_len);
		size_t tot = hdr_len + plen;
		in[2] = tot >> 8;
		in[3] = tot & 0xff;
		in[4] = (uint16_t)(id + i) >> 8;
		in[5] = (uint16_t)(id + i) & 0xff;
		set_ip_csum(in);
		uint32_t s = seq + (uint32_t)(i * mss);
		th[4] = s >> 24;
		th[5] = s >> 16;
		th[6] = s >> 8;
		th[7] = s;
		th[13] = flags;
		if (i)
			th[13] &= ~0x80; /* CWR */
		if (i + 1 < nseg)
			th[13] &= ~0x09; /* FIN, PSH */
		th[16] = th[17] = 0;
		uint8_t *payload = ip + hdr_len + i * mss;
		uint16_t sum = csum16(th, hdr_len - ihl, pseudo_sum(in, tot - ihl));
		sum = (uint16_t)~csum16(payload, plen, sum);
		memcpy(th + 16, &sum, 2);
		fill_outer(h, tmpl, overhead, tot, next_id(outer_id));
		tx_add(t, h, (size_t)overhead + hdr_len, payload, plen, tot);
	}
	return 0;
}

/* One tunnel end as forward.py describes it (fastpath.CEnd): its descriptors, header template,
 * decapsulation format (tunnels.C_FORMAT_*), remote address and counters per direction. */
struct dp_end {
	int32_t tun, raw, overhead, format, vnet, error;
	const uint8_t *tmpl, *remote;
	struct dp_counters *enc, *dec;
	uint16_t outer_id; /* next outer IP ID, counted per end like the kernel's */
};

/* The encap side of a thread: buffers reused for every end it serves. */
struct encap {
	uint8_t *bufs;
	struct txbatch *t;
};

/* One batch TUN -> raw socket without blocking: packets sent, 0 when the TUN had none, -errno. */
static int encap_step(struct encap *e, struct dp_end *end)
{
	struct txbatch *t = e->t;
	struct dp_counters *c = end->enc;
	int rc = 0, reads = 0, overhead = end->overhead, skip = end->vnet ? VNET_LEN : 0;

	t->n = 0;
	for (int slot = 0; slot < BATCH && t->n + GRO_MAX_SEGS <= MAX_MSGS; slot++) {
		uint8_t *b = e->bufs + (size_t)slot * SLOT, *ip = b + overhead;
		struct vnet_hdr vh = { 0 };
		/* the vnet header lands inside the room for the outer header: read it out first */
		ssize_t r = read(end->tun, ip - skip, SLOT - overhead + skip);
		if (r < 0) {
			if (errno == EINTR) {
				slot--;
				continue;
			}
			if (errno != EAGAIN)
				rc = -errno;
			break;
		}
		reads++;
		if (skip)
			memcpy(&vh, ip - skip, VNET_LEN);
		size_t len = (size_t)(r - skip);
		if (r < skip + 20 || ip[0] >> 4 != 4) {
			c->dropped++;
			continue;
		}
		if ((vh.gso_type & 0x7f) == VNET_GSO_TCPV4) {
			if (tso_split(t, ip, len, vh.gso_size, end->tmpl, overhead, &end->outer_id))
				c->dropped++;
			c->merged_writes++;
			continue;
		}
		if (vh.gso_type) { /* only TSO4 is switched on */
			c->dropped++;
			continue;
		}
		if (vh.flags & VNET_F_NEEDS_CSUM) {
			size_t at = (size_t)vh.csum_start + vh.csum_offset;
			if (at + 2 > len || vh.csum_start >= len) {
				c->dropped++;
				continue;
			}
			uint16_t sum = (uint16_t)~csum16(ip + vh.csum_start, len - vh.csum_start, 0);
			memcpy(ip + at, &sum, 2);
		}
		fill_outer(b, end->tmpl, overhead, len, next_id(&end->outer_id));
		tx_add(t, b, len + (size_t)overhead, NULL, 0, len);
	}
	for (int off = 0; off < t->n;) {
		int s = sendmmsg(end->raw, t->msgs + off, t->n - off, 0);
		if (s < 0) {
			if (errno == EINTR)
				continue;
			c->dropped++; /* this packet is refused (EMSGSIZE, ENOBUFS...): skip it */
			off++;
			continue;
		}
		for (int i = off; i < off + s; i++) {
			c->packets++;
			c->bytes += t->inner_len[i];
		}
		off += s;
	}
	return rc ? rc : reads;
}

static int encap_init(struct encap *e)
{
	e->bufs = malloc((size_t)BATCH * SLOT);
	e->t = calloc(1, sizeof(*e->t));
	if (!e->bufs || !e->t) {
		free(e->bufs);
		free(e->t);
		return -ENOMEM;
	}
	return 0;
}

static void encap_free(struct encap *e)
{
	free(e->bufs);
	free(e->t);
}

/* Start of the inner packet a kernel tunnel would accept, or -1 to drop (see wire.decap). */
static int decap_one(uint8_t *p, size_t n, int format, const uint8_t *remote)
{
	if (n < 20 || p[0] >> 4 != 4 || memcmp(p + 12, remote, 4))
		return -1;
	size_t start = (size_t)(p[0] & 0x0f) * 4;
	if (format == DP_FORMAT_GRE) {
		if (n < start + 4)
			return -1;
		unsigned flags = (unsigned)p[start] << 8 | p[start + 1];
		unsigned proto = (unsigned)p[start + 2] << 8 | p[start + 3];
		if (flags & (0x0007 | 0x4000 | 0x2000) || proto != 0x0800)
			return -1;
		size_t len = 4 + (flags & 0x8000 ? 4 : 0) + (flags & 0x1000 ? 4 : 0);
		if (flags & 0x8000 && (n < start + len || csum16(p + start, n - start, 0) != 0xffff))
			return -1;
		start += len;
	}
	if (n < start + 20 || p[start] >> 4 != 4)
		return -1;
	uint8_t *in = p + start;
	if ((p[1] & 3) == 3 && (in[1] & 3) != 3) {
		if ((in[1] & 3) == 0)
			return -1;
		in[1] |= 3;
		set_ip_csum(in);
	}
	return (int)start;
}

/* A run of segments of one TCP flow, written to the TUN as one GSO packet. */
struct gro {
	int tun, nseg;
	struct dp_counters *c;
	uint8_t *head;          /* first segment's IPv4 header; headers of the others are skipped */
	size_t hdr_len, mss, len;
	uint32_t next_seq;
	struct vnet_hdr vh;
	struct iovec iov[1 + GRO_MAX_SEGS];
};

/* Header and payload sizes if this is a plain, checksum-valid TCP segment we may coalesce. */
static int gro_candidate(const uint8_t *ip, size_t len, size_t *hdr_len)
{
	if (len < 40 || ip[0] != 0x45 || ip[9] != 6 || (ip[6] & 0x3f) || ip[7])
		return 0;
	if (((size_t)ip[2] << 8 | ip[3]) != len || csum16(ip, 20, 0) != 0xffff)
		return 0;
	size_t doff = (size_t)(ip[32] >> 4) * 4;
	if (doff < 20 || 20 + doff >= len || (ip[33] & ~0x18) != 0 || !(ip[33] & 0x10))
		return 0; /* ACK, optionally PSH; nothing else (SYN/FIN/RST/URG/ECE/CWR flush) */
	if (csum16(ip + 20, len - 20, pseudo_sum(ip, len - 20)) != 0xffff)
		return 0; /* let the kernel see (and drop) a damaged segment as it is */
	*hdr_len = 20 + doff;
	return 1;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Does this segment continue the pending run? (tcp_gro_receive's rules) */
static int gro_matches(const struct gro *g, const uint8_t *ip, size_t len, size_t hdr_len)
{
	const uint8_t *h = g->head;
	size_t payload = len - hdr_len;
	return g->nseg < GRO_MAX_SEGS && g->len + payload <= GRO_MAX_LEN && hdr_len == g->hdr_len &&
	       payload <= g->mss && !(h[33] & 0x08) && ip[1] == h[1] && ip[6] == h[6] && ip[8] == h[8] &&
	       !memcmp(ip + 12, h + 12, 12) && be32(ip + 24) == g->next_seq &&
	       !memcmp(ip + 28, h + 28, 5) && !memcmp(ip + 34, h + 34, 2) &&
	       !memcmp(ip + 40, h + 40, hdr_len - 40);
}

static int write_all(int tun, struct iovec *iov, int n)
{
	for (;;) {
		if (writev(tun, iov, n) >= 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

static const struct vnet_hdr no_offload;

/* Write the pending run; a lone segment goes as it came. */
static void gro_flush(struct gro *g)
{
	int n = g->nseg;
	if (!n)
		return;
	g->nseg = 0;
	if (n == 1) {
		struct iovec one[2] = { { (void *)&no_offload, VNET_LEN }, g->iov[1] };
		if (write_all(g->tun, one, 2))
			g->c->dropped++;
		return;
	}
	uint8_t *h = g->head;
	h[2] = g->len >> 8;
	h[3] = g->len & 0xff;
	set_ip_csum(h);
	uint16_t ph = pseudo_sum(h, g->len - 20); /* partial checksum, as CHECKSUM_PARTIAL wants */
	memcpy(h + 36, &ph, 2);
	g->vh = (struct vnet_hdr){ VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, (uint16_t)g->hdr_len,
				   (uint16_t)g->mss, 20, 16 };
	g->iov[0] = (struct iovec){ &g->vh, VNET_LEN };
	if (write_all(g->tun, g->iov, n + 1))
		g->c->dropped += n;
	else
		g->c->merged_writes++;
}

static void gro_start(struct gro *g, uint8_t *ip, size_t len, size_t hdr_len)
{
	g->head = ip;
	g->hdr_len = hdr_len;
	g->mss = len - hdr_len;
	g->len = len;
	g->next_seq = be32(ip + 24) + (uint32_t)g->mss;
	g->iov[1] = (struct iovec){ ip, len };
	g->nseg = 1;
}

static void gro_append(struct gro *g, uint8_t *ip, size_t len, size_t hdr_len)
{
	size_t payload = len - hdr_len;
	g->iov[1 + g->nseg] = (struct iovec){ ip + hdr_len, payload };
	g->nseg++;
	g->len += payload;
	g->next_seq += (uint32_t)payload;
	g->head[33] |= ip[33] & 0x08; /* PSH ends the run */
}

/* The decap side of a thread: buffers and GRO state reused for every end it serves. */
struct decap {
	uint8_t *bufs;
	struct gro g;
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
};

/* An error an ICMP message about an earlier packet left on the raw socket (icmp_err_convert), e.g.
 * protocol unreachable from a peer whose tunnel end is not up yet: the next recv works again and
 * the kernel's own tunnel ignores these, so they do not stop the tunnel (pyloop.ICMP_REPORTED). */
static int icmp_reported(int e)
{
	return e == ENETUNREACH || e == EHOSTUNREACH || e == ENOPROTOOPT || e == ECONNREFUSED || e == EMSGSIZE ||
	       e == EOPNOTSUPP || e == EHOSTDOWN || e == ENONET || e == EPROTO;
}

/* One recvmmsg batch raw socket -> TUN without blocking: packets read, 0 when none, -errno. */
static int decap_step(struct decap *d, struct dp_end *end)
{
	struct dp_counters *c = end->dec;
	struct gro *g = &d->g;
	int n;

	g->tun = end->tun;
	g->c = c;
	do
		n = recvmmsg(end->raw, d->msgs, BATCH, MSG_DONTWAIT, NULL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN || icmp_reported(errno) ? 0 : -errno;
	for (int i = 0; i < n; i++) {
		uint8_t *p = d->iov[i].iov_base;
		size_t len = d->msgs[i].msg_len, hdr_len;
		int start = decap_one(p, len, end->format, end->remote);
		if (start < 0) {
			c->dropped++;
			continue;
		}
		uint8_t *ip = p + start;
		len -= (size_t)start;
		c->packets++;
		c->bytes += len;
		if (!end->vnet) {
			if (write(end->tun, ip, len) < 0)
				c->dropped++;
			continue;
		}
		int cand = gro_candidate(ip, len, &hdr_len);
		if (g->nseg && cand && gro_matches(g, ip, len, hdr_len)) {
			gro_append(g, ip, len, hdr_len);
			if (len - hdr_len < g->mss || (ip[33] & 0x08))
				gro_flush(g);
			continue;
		}
		gro_flush(g);
		if (cand) {
			gro_start(g, ip, len, hdr_len);
			continue;
		}
		struct iovec one[2] = { { (void *)&no_offload, VNET_LEN }, { ip, len } };
		if (write_all(end->tun, one, 2))
			c->dropped++;
	}
	gro_flush(g); /* never hold a segment past this batch */
	return n;
}

static struct decap *decap_new(void)
{
	struct decap *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->bufs = malloc((size_t)BATCH * SLOT);
	if (!d->bufs) {
		free(d);
		return NULL;
	}
	for (int i = 0; i < BATCH; i++) {
		d->iov[i].iov_base = d->bufs + (size_t)i * SLOT;
		d->iov[i].iov_len = SLOT;
		d->msgs[i].msg_hdr.msg_iov = &d->iov[i];
		d->msgs[i].msg_hdr.msg_iovlen = 1;
	}
	return d;
}

static void decap_free(struct decap *d)
{
	if (d)
		free(d->bufs);
	free(d);
}

/* Some of a lab's tunnel ends, both directions, on the calling thread: every TUN and raw socket
 * in one epoll set (level-triggered), one batch per ready descriptor per round, so a busy tunnel
 * cannot starve the others; sleeps in epoll_wait only when none has packets (an idle tunnel costs
 * no CPU). One thread for both directions saves the wakeup each small packet (the ACKs) would
 * otherwise cost. Returns 0 after a stop, else -errno; an end whose descriptor fails gets the errno
 * in its `error` and counters, and the thread returns (the process supervising it stops the lab's
 * dataplane, as before). */
int dp_serve(struct dp_end *ends, int n, int stop_fd, const volatile int *stop)
{
	struct encap e = { 0 };
	struct decap *d = decap_new();
	int rc = encap_init(&e), ep = -1;

	if (rc || !d) {
		if (!rc)
			encap_free(&e);
		decap_free(d);
		return -ENOMEM;
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		rc = -errno;
	for (int i = 0; i < n && !rc; i++) {
		ends[i].outer_id = (uint16_t)(getpid() ^ (uintptr_t)&ends[i]); /* counts up from here, never 0 */
		struct epoll_event in = { EPOLLIN, { .u64 = (uint64_t)i << 1 } };
		struct epoll_event out = { EPOLLIN, { .u64 = (uint64_t)i << 1 | 1 } };
		if (epoll_ctl(ep, EPOLL_CTL_ADD, ends[i].tun, &in) || epoll_ctl(ep, EPOLL_CTL_ADD, ends[i].raw, &out))
			rc = -errno;
	}
	struct epoll_event stop_ev = { EPOLLIN, { .u64 = UINT64_MAX } };
	if (!rc && epoll_ctl(ep, EPOLL_CTL_ADD, stop_fd, &stop_ev))
		rc = -errno;
	struct epoll_event ready[64];
	while (!rc && !*stop) {
		int k = epoll_wait(ep, ready, 64, -1);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		for (int j = 0; j < k && !rc; j++) {
			uint64_t what = ready[j].data.u64;
			if (what == UINT64_MAX)
				goto out; /* the stop pipe: written once, never read, so every thread sees it */
			struct dp_end *end = &ends[what >> 1];
			int r = what & 1 ? decap_step(d, end) : encap_step(&e, end);
			if (r < 0) {
				end->error = -r;
				end->enc->error = end->dec->error = (uint64_t)(-r);
				rc = r;
			}
		}
	}
out:
	if (ep >= 0)
		close(ep);
	encap_free(&e);
	decap_free(d);
	return rc;
}
