/*
 * fwd: PID 1's port forwarding (a Unix socket in the socket dir per spec
 * port, spliced to 127.0.0.1:<port> inside with bounded buffers) and the
 * capped log relay.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/err.h"
#include "common/xalloc.h"
#include "sandbox/sbx.h"

#define FWD_MAX_CONNS 256
#define FWD_BUF 16384

struct fwd_pipe {
	char buf[FWD_BUF];
	size_t len, off;
	bool eof;      /* source said EOF */
	bool shut;     /* shutdown(SHUT_WR) sent to the sink */
};

struct fwd_conn {
	int fd[2];                 /* 0: the Unix client, 1: the TCP side */
	struct fwd_pipe p[2];      /* p[0]: 0 -> 1, p[1]: 1 -> 0 */
	bool connecting;
	bool dead;
};

struct sbx_fwd {
	int n;
	int lfd[32];
	int port[32];
	int n_conns;
	struct fwd_conn *conns[FWD_MAX_CONNS];
	int map[2 * FWD_MAX_CONNS + 32]; /* pollfd index -> conn*2+side, or -1-listener */
	int n_map;
};

static int listen_unix(const char *path, uid_t uid, gid_t gid, struct err **err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path))
		return err_set(err, ENAMETOOLONG, "ports: socket path '%s' too long", path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return err_set_errno(err, "ports: socket");
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chown(path, uid, gid) < 0 ||
	    chmod(path, 0660) < 0 || listen(fd, 128) < 0) {
		int r = err_set_errno(err, "ports: listen on '%s'", path);
		close(fd);
		return r;
	}
	return fd;
}

int sbx_fwd_new(const struct sandbox_spec *s, const char *dir, struct sbx_fwd **out,
		struct err **err)
{
	struct sbx_fwd *f = xcalloc(1, sizeof(*f));
	for (int i = 0; i < s->n_ports && i < 32; i++) {
		char *p = xasprintf("%s/%s", dir, s->ports[i].socket_name);
		int fd = listen_unix(p, s->uid, s->gid, err);
		free(p);
		if (fd < 0) {
			sbx_fwd_free(f);
			return fd;
		}
		f->lfd[f->n] = fd;
		f->port[f->n++] = s->ports[i].port;
	}
	*out = f;
	return 0;
}

static void conn_free(struct fwd_conn *c)
{
	close(c->fd[0]);
	close(c->fd[1]);
	free(c);
}

void sbx_fwd_free(struct sbx_fwd *f)
{
	if (!f)
		return;
	for (int i = 0; i < f->n; i++)
		close(f->lfd[i]);
	for (int i = 0; i < f->n_conns; i++)
		conn_free(f->conns[i]);
	free(f);
}

void sbx_fwd_drop_conns(struct sbx_fwd *f)
{
	for (int i = 0; i < f->n_conns; i++)
		conn_free(f->conns[i]);
	f->n_conns = 0;
	f->n_map = 0;
}

static short conn_events(const struct fwd_conn *c, int side)
{
	short ev = 0;
	const struct fwd_pipe *in = &c->p[side], *out = &c->p[1 - side];
	if (side == 1 && c->connecting)
		return POLLOUT;
	if (!in->eof && in->len < FWD_BUF)
		ev |= POLLIN;
	if (out->len > out->off)
		ev |= POLLOUT;
	return ev;
}

int sbx_fwd_pollfds(struct sbx_fwd *f, struct pollfd *pfd, int max)
{
	int n = 0;
	for (int i = 0; i < f->n && n < max; i++) {
		pfd[n] = (struct pollfd){ .fd = f->n_conns < FWD_MAX_CONNS ? f->lfd[i] : -1,
					  .events = POLLIN };
		f->map[n++] = -1 - i;
	}
	for (int i = 0; i < f->n_conns; i++)
		for (int side = 0; side < 2 && n < max; side++) {
			short ev = conn_events(f->conns[i], side);
			/* a side we wait nothing from is left out: POLLHUP and
			 * POLLERR cannot be masked, and a peer that is gone for
			 * good (read EOF, our SHUT_WR sent) would report POLLHUP
			 * on every poll, spinning PID 1 until the other side is
			 * done */
			pfd[n] = (struct pollfd){ .fd = ev ? f->conns[i]->fd[side] : -1,
						  .events = ev };
			f->map[n++] = i * 2 + side;
		}
	f->n_map = n;
	return n;
}

static void fwd_accept(struct sbx_fwd *f, int li)
{
	/* several listeners can be ready in one round while only one slot
	 * is left: the poll set only hides them once the table is full */
	if (f->n_conns >= FWD_MAX_CONNS)
		return;
	int a = accept4(f->lfd[li], NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (a < 0)
		return;
	int b = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(f->port[li]),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	/* TCP's non-blocking connect says EINPROGRESS (or 0 when loopback
	 * finished the handshake at once); EAGAIN here means no ephemeral
	 * port, a failure like ECONNREFUSED */
	if (b < 0 || (connect(b, (struct sockaddr *)&sin, sizeof(sin)) < 0 &&
		      errno != EINPROGRESS)) {
		/* nothing listens inside (yet: "up" means exec'd, not
		 * listening): the client sees EOF or ECONNRESET */
		close(a);
		if (b >= 0)
			close(b);
		return;
	}
	struct fwd_conn *c = xcalloc(1, sizeof(*c));
	c->fd[0] = a;
	c->fd[1] = b;
	c->connecting = true;
	f->conns[f->n_conns++] = c;
}

static void conn_connected(struct fwd_conn *c)
{
	int e = 0;
	socklen_t l = sizeof(e);
	if (getsockopt(c->fd[1], SOL_SOCKET, SO_ERROR, &e, &l) < 0 || e)
		c->dead = true;
	c->connecting = false;
}

static void pipe_fill(struct fwd_pipe *in, int fd)
{
	ssize_t r = read(fd, in->buf + in->len, FWD_BUF - in->len);
	if (r > 0)
		in->len += (size_t)r;
	else if (r == 0 || (errno != EAGAIN && errno != EINTR))
		in->eof = true;
}

/* false when the sink failed for good */
static bool pipe_drain(struct fwd_pipe *out, int fd)
{
	ssize_t w = write(fd, out->buf + out->off, out->len - out->off);
	if (w > 0)
		out->off += (size_t)w;
	if (out->off == out->len)
		out->off = out->len = 0;
	return w >= 0 || errno == EAGAIN || errno == EINTR;
}

/* Moves bytes for one side: read into p[side], write p[1-side] out. */
static void conn_io(struct fwd_conn *c, int side, short rev)
{
	struct fwd_pipe *in = &c->p[side], *out = &c->p[1 - side];
	if (side == 1 && c->connecting) {
		conn_connected(c);
		return;
	}
	if ((rev & (POLLIN | POLLHUP | POLLERR)) && !in->eof && in->len < FWD_BUF)
		pipe_fill(in, c->fd[side]);
	if ((rev & POLLOUT) && out->len > out->off && !pipe_drain(out, c->fd[side]))
		c->dead = true;
}

/* Half-close: once a source hit EOF and its bytes are out, shut the sink. */
static void conn_settle(struct fwd_conn *c)
{
	for (int d = 0; d < 2; d++) {
		struct fwd_pipe *p = &c->p[d];
		if (p->eof && p->len == p->off && !p->shut && !c->connecting) {
			shutdown(c->fd[1 - d], SHUT_WR);
			p->shut = true;
		}
	}
	if (c->p[0].shut && c->p[1].shut)
		c->dead = true;
}

void sbx_fwd_handle(struct sbx_fwd *f, const struct pollfd *pfd, int n)
{
	int n_conns = f->n_conns; /* accepts below append after these */
	for (int i = 0; i < n && i < f->n_map; i++) {
		if (!pfd[i].revents)
			continue;
		int m = f->map[i];
		if (m < 0)
			fwd_accept(f, -1 - m);
		else if (m / 2 < n_conns && !f->conns[m / 2]->dead)
			conn_io(f->conns[m / 2], m % 2, pfd[i].revents);
	}
	int k = 0;
	for (int i = 0; i < f->n_conns; i++) {
		conn_settle(f->conns[i]);
		if (f->conns[i]->dead)
			conn_free(f->conns[i]);
		else
			f->conns[k++] = f->conns[i];
	}
	f->n_conns = k;
}

void sbx_log_append(int log_fd, int old_fd, const char *data, size_t n)
{
	struct stat st;
	if (log_fd < 0)
		return;
	if (old_fd >= 0 && fstat(log_fd, &st) == 0 && st.st_size + (off_t)n > SBX_LOG_CAP) {
		/* rotate by copying: after pivot_root the host path cannot be
		 * renamed, but both files were opened before it */
		off_t off = 0;
		if (ftruncate(old_fd, 0) == 0) {
			lseek(old_fd, 0, SEEK_SET);
			while (off < st.st_size &&
			       sendfile(old_fd, log_fd, &off, (size_t)(st.st_size - off)) > 0)
				;
		}
		if (ftruncate(log_fd, 0) < 0)
			return;
	}
	sbx_write_all(log_fd, data, n);
}
