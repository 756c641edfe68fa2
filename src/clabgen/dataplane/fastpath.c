/* clabgen userspace tunnel fast path: the same loops as pyloop.py, without the GIL.
 *
 * stop is checked once per batch (a busy loop never polls); stop_fd wakes an idle one.
 * Built at run time by fastpath.py (gcc -O2 -shared) and called through ctypes, which releases
 * the GIL, one thread per direction. Batches with recvmmsg/sendmmsg; TUN has no batch call.
 * Wire format and checks are those of wire.py; keep the two in step.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define BATCH 64
#define SLOT 65536

struct dp_counters { uint64_t packets, bytes, dropped, error; };

/* 1 when the stop pipe is readable, 0 when fd is, -errno on failure. */
static int wait_readable(int fd, int stop_fd)
{
	struct pollfd p[2] = { { fd, POLLIN, 0 }, { stop_fd, POLLIN, 0 } };
	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (p[1].revents)
			return 1;
		if (p[0].revents)
			return 0;
	}
}

static uint16_t checksum(const uint8_t *p, size_t n)
{
	uint32_t sum = 0;
	for (; n > 1; p += 2, n -= 2)
		sum += (uint32_t)p[0] << 8 | p[1];
	if (n)
		sum += (uint32_t)p[0] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static uint8_t encap_tos(uint8_t inner)
{
	uint8_t ecn = inner & 3;
	return ecn == 3 ? 2 : ecn;
}

int dp_encap(int tun, int raw, const uint8_t *tmpl, int overhead, int stop_fd, const volatile int *stop,
	     struct dp_counters *c)
{
	uint8_t *bufs = malloc((size_t)BATCH * SLOT);
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	int rc = 0;

	if (!bufs)
		return -ENOMEM;
	memset(msgs, 0, sizeof(msgs));
	for (int i = 0; i < BATCH; i++) {
		memcpy(bufs + (size_t)i * SLOT, tmpl, overhead);
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	while (!*stop) {
		int n = 0;
		while (n < BATCH) {
			uint8_t *b = bufs + (size_t)n * SLOT;
			ssize_t r = read(tun, b + overhead, SLOT - overhead);
			if (r < 0) {
				if (errno == EINTR)
					continue;
				if (errno != EAGAIN)
					rc = -errno;
				break;
			}
			if (r < 20 || b[overhead] >> 4 != 4) {
				c->dropped++;
				continue;
			}
			size_t total = (size_t)r + overhead;
			b[1] = encap_tos(b[overhead + 1]);
			b[2] = total >> 8;
			b[3] = total & 0xff;
			b[8] = b[overhead + 8];
			iov[n].iov_base = b;
			iov[n].iov_len = total;
			n++;
		}
		for (int off = 0; off < n;) {
			int s = sendmmsg(raw, msgs + off, n - off, 0);
			if (s < 0) {
				if (errno == EINTR)
					continue;
				c->dropped++; /* this packet is refused (EMSGSIZE, ENOBUFS...): skip it */
				off++;
				continue;
			}
			for (int i = off; i < off + s; i++) {
				c->packets++;
				c->bytes += iov[i].iov_len - overhead;
			}
			off += s;
		}
		if (rc)
			break;
		if (n < BATCH) {
			int w = wait_readable(tun, stop_fd);
			if (w) {
				rc = w < 0 ? w : 0;
				break;
			}
		}
	}
	free(bufs);
	c->error = (uint64_t)(-rc);
	return rc;
}

/* Start of the inner packet a kernel tunnel would accept, or -1 to drop (see wire.decap). */
static int decap_one(uint8_t *p, size_t n, int gre, const uint8_t *remote)
{
	if (n < 20 || p[0] >> 4 != 4 || memcmp(p + 12, remote, 4))
		return -1;
	size_t start = (size_t)(p[0] & 0x0f) * 4;
	if (gre) {
		if (n < start + 4)
			return -1;
		unsigned flags = (unsigned)p[start] << 8 | p[start + 1];
		unsigned proto = (unsigned)p[start + 2] << 8 | p[start + 3];
		if (flags & (0x0007 | 0x4000 | 0x2000) || proto != 0x0800)
			return -1;
		size_t len = 4 + (flags & 0x8000 ? 4 : 0) + (flags & 0x1000 ? 4 : 0);
		if (flags & 0x8000 && (n < start + len || checksum(p + start, n - start) != 0))
			return -1;
		start += len;
	}
	if (n < start + 20 || p[start] >> 4 != 4)
		return -1;
	uint8_t *in = p + start;
	if ((p[1] & 3) == 3 && (in[1] & 3) != 3) {
		if ((in[1] & 3) == 0)
			return -1;
		size_t ihl = (size_t)(in[0] & 0x0f) * 4;
		in[1] |= 3;
		in[10] = in[11] = 0;
		uint16_t s = checksum(in, ihl);
		in[10] = s >> 8;
		in[11] = s & 0xff;
	}
	return (int)start;
}

int dp_decap(int raw, int tun, int gre, const uint8_t *remote, int stop_fd, const volatile int *stop,
	     struct dp_counters *c)
{
	uint8_t *bufs = malloc((size_t)BATCH * SLOT);
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	int rc = 0;

	if (!bufs)
		return -ENOMEM;
	memset(msgs, 0, sizeof(msgs));
	for (int i = 0; i < BATCH; i++) {
		iov[i].iov_base = bufs + (size_t)i * SLOT;
		iov[i].iov_len = SLOT;
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	while (!*stop) {
		int n = recvmmsg(raw, msgs, BATCH, MSG_DONTWAIT, NULL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN) {
				rc = -errno;
				break;
			}
			int w = wait_readable(raw, stop_fd);
			if (w) {
				rc = w < 0 ? w : 0;
				break;
			}
			continue;
		}
		for (int i = 0; i < n; i++) {
			uint8_t *p = iov[i].iov_base;
			size_t len = msgs[i].msg_len;
			int start = decap_one(p, len, gre, remote);
			if (start < 0 || write(tun, p + start, len - start) < 0) {
				c->dropped++;
				continue;
			}
			c->packets++;
			c->bytes += len - start;
		}
	}
	free(bufs);
	c->error = (uint64_t)(-rc);
	return rc;
}
