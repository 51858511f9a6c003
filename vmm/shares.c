#include "vmm/shares.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "vmm/log.h"

#define DAEMON_STOP_GRACE_MS 1000

static bool executable(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

int shares_find_daemon(const struct vm_config *cfg, char *path, size_t len)
{
	static const char *const fixed[] = {"/usr/libexec/virtiofsd", "/usr/lib/qemu/virtiofsd"};
	const char *env = getenv("PATH");

	if (cfg->virtiofsd) {
		snprintf(path, len, "%s", cfg->virtiofsd);
		return executable(path) ? 0 : -ENOENT;
	}
	while (env && *env) {
		size_t dir_len = strcspn(env, ":");

		if (dir_len &&
		    (size_t)snprintf(path, len, "%.*s/virtiofsd", (int)dir_len, env) < len &&
		    executable(path))
			return 0;
		env += dir_len + (env[dir_len] == ':');
	}
	for (unsigned i = 0; i < ARRAY_SIZE(fixed); i++) {
		snprintf(path, len, "%s", fixed[i]);
		if (executable(path))
			return 0;
	}
	return -ENOENT;
}

/* Fills @sh from @sc: the host path resolved, the guest path and tag defaulted. */
static int resolve_share(struct share *sh, const struct share_config *sc, unsigned index,
                         bool run_mode, char *err, size_t errlen)
{
	struct stat st;
	const char *base;

	if (!realpath(sc->host, sh->host) || stat(sh->host, &st) < 0) {
		int ret = -errno;

		snprintf(err, errlen, "--share %s: %s", sc->host, strerror(-ret));
		return ret;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "--share %s: not a directory", sc->host);
		return -ENOTDIR;
	}
	snprintf(sh->guest, sizeof(sh->guest), "%s", sc->guest[0] ? sc->guest : sh->host);
	sh->read_only = sc->read_only;
	base = strrchr(sh->host, '/') + 1;
	if (sc->tag[0])
		snprintf(sh->tag, sizeof(sh->tag), "%s", sc->tag);
	else if (run_mode)
		snprintf(sh->tag, sizeof(sh->tag), "vmm-share%u", index);
	else if (strlen(base) > CONFIG_TAG_MAX) {
		snprintf(err, errlen,
		         "--share %s: its name is longer than %d bytes: give a tag=", sc->host,
		         CONFIG_TAG_MAX);
		return -EINVAL;
	} else
		snprintf(sh->tag, sizeof(sh->tag), "%s", *base ? base : "root");
	return 0;
}

static int check_unique_tags(const struct shares *s, char *err, size_t errlen)
{
	for (unsigned i = 0; i < s->nr; i++) {
		for (unsigned j = 0; j < i; j++) {
			if (!strcmp(s->items[i].tag, s->items[j].tag)) {
				snprintf(err, errlen,
				         "--share: %s and %s both have the tag '%s': give a tag=",
				         s->items[j].host, s->items[i].host, s->items[i].tag);
				return -EINVAL;
			}
		}
	}
	return 0;
}

/* A listening socket at @path; returns the fd or -errno. */
static int listen_at(const char *path)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 1) < 0) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	return fd;
}

static int connect_to(const char *path)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	return fd;
}

/* True when @c has ended or ends within @ms (then reaped). */
static bool ended_within(struct child *c, int ms)
{
	struct pollfd p = {.fd = c->pidfd, .events = POLLIN};

	if (c->pid && c->pidfd >= 0)
		poll(&p, 1, ms);
	return child_exited(c);
}

/*
 * Starts @sh's daemon on a new socket in @s->sock_dir and connects to it. The daemon accepts
 * one connection; the socket's name is gone once connected.
 */
static int start_daemon(struct shares *s, struct share *sh, const char *daemon, char *err,
                        size_t errlen)
{
	char sock_path[96], source[PATH_MAX + 16];
	bool as_root = geteuid() == 0;
	char *argv[] = {(char *)daemon,
	                "--fd=" STR(CHILD_PASSED_FD),
	                "-o",
	                source,
	                "-o",
	                "sandbox=chroot",
	                "-o",
	                "cache=auto",
	                as_root ? NULL : "--rlimit-nofile=0",
	                NULL};
	struct child_spec spec = {
	        .path = daemon,
	        .argv = argv,
	        .read_only_dir = sh->read_only ? sh->host : NULL,
	        .user_namespace = !as_root,
	};
	char why[256];
	int listen_fd, ret;

	/* Named by index: a tag may hold any byte, '/' included. */
	snprintf(sock_path, sizeof(sock_path), "%s/%u.sock", s->sock_dir,
	         (unsigned)(sh - s->items));
	snprintf(source, sizeof(source), "source=%s", sh->host);
	listen_fd = listen_at(sock_path);
	if (listen_fd < 0) {
		snprintf(err, errlen, "virtiofsd for %s: socket %s: %s", sh->host, sock_path,
		         strerror(-listen_fd));
		return listen_fd;
	}
	spec.pass_fd = listen_fd;
	snprintf(why, sizeof(why), "virtiofsd (%s)", sh->tag);
	ret = child_spawn(&sh->daemon, why, &spec, err, errlen);
	close(listen_fd);
	if (!ret)
		sh->sock = connect_to(sock_path);
	unlink(sock_path);
	if (ret)
		return ret;
	if (sh->sock < 0) {
		ret = sh->sock;
		sh->sock = -1;
		/* Refused: the daemon closed the listening socket, so it is ending. */
		if (ended_within(&sh->daemon, DAEMON_STOP_GRACE_MS))
			child_describe(&sh->daemon, err, errlen);
		else
			snprintf(err, errlen, "virtiofsd for %s: connect: %s", sh->host,
			         strerror(-ret));
		return ret;
	}
	log_debug("virtiofsd for %s (tag %s) connected", sh->host, sh->tag);
	return 0;
}

static int make_sock_dir(struct shares *s, char *err, size_t errlen)
{
	const char *base = getenv("XDG_RUNTIME_DIR");

	if (!base || !*base || access(base, W_OK))
		base = "/tmp";
	snprintf(s->sock_dir, sizeof(s->sock_dir), "%.40s/vmm-XXXXXX", base);
	if (!mkdtemp(s->sock_dir)) {
		snprintf(err, errlen, "cannot make a directory for virtiofsd's sockets in %s: %s",
		         base, strerror(errno));
		s->sock_dir[0] = '\0';
		return -errno;
	}
	return 0;
}

int shares_resolve(struct shares *s, const struct vm_config *cfg, char *err, size_t errlen)
{
	int ret = 0;

	memset(s, 0, sizeof(*s));
	for (unsigned i = 0; i < SHARES_MAX; i++)
		s->items[i].sock = -1;
	if (cfg->run_cmd) {
		struct share *root = &s->items[s->nr++];

		snprintf(root->host, sizeof(root->host), "/");
		snprintf(root->guest, sizeof(root->guest), "/");
		snprintf(root->tag, sizeof(root->tag), "%s", CONFIG_ROOT_TAG);
		root->read_only = true;
	}
	for (unsigned i = 0; i < cfg->nr_shares && !ret; i++)
		ret = resolve_share(&s->items[s->nr++], &cfg->shares[i], i, cfg->run_cmd, err,
		                    errlen);
	return ret ? ret : check_unique_tags(s, err, errlen);
}

int shares_start(struct shares *s, const struct vm_config *cfg, char *err, size_t errlen)
{
	char daemon[PATH_MAX];
	int ret = shares_resolve(s, cfg, err, errlen);

	if (ret || !s->nr)
		return ret;
	if (shares_find_daemon(cfg, daemon, sizeof(daemon))) {
		snprintf(err, errlen,
		         cfg->virtiofsd
		                 ? "--virtiofsd %s: not an executable file"
		                 : "%svirtiofsd not found (in PATH, /usr/libexec or "
		                   "/usr/lib/qemu): install qemu-system-common or virtiofsd, "
		                   "or give --virtiofsd PATH",
		         cfg->virtiofsd ? cfg->virtiofsd : "");
		return -ENOENT;
	}
	ret = make_sock_dir(s, err, errlen);
	for (unsigned i = 0; i < s->nr && !ret; i++)
		ret = start_daemon(s, &s->items[i], daemon, err, errlen);
	return ret;
}

static void daemon_exited(void *opaque, struct child *c)
{
	struct shares *s = opaque;

	s->on_exit(s->opaque, container_of(c, struct share, daemon));
}

int shares_watch(struct shares *s, struct event_loop *loop,
                 void (*on_exit)(void *opaque, struct share *share), void *opaque)
{
	int ret = 0;

	s->on_exit = on_exit;
	s->opaque = opaque;
	for (unsigned i = 0; i < s->nr && !ret; i++)
		ret = child_watch(&s->items[i].daemon, loop, daemon_exited, s);
	return ret;
}

void shares_stop(struct shares *s, struct event_loop *loop)
{
	for (unsigned i = 0; i < s->nr; i++) {
		struct share *sh = &s->items[i];

		if (sh->sock >= 0)
			close(sh->sock);
		sh->sock = -1;
		/*
		 * A read-only share's daemon has nothing of the guest's to write out, and every
		 * reply it could still send goes to a guest that is gone: killed at once, no grace.
		 */
		child_stop(&sh->daemon, loop, sh->read_only ? 0 : DAEMON_STOP_GRACE_MS);
	}
	if (s->sock_dir[0])
		rmdir(s->sock_dir);
	s->sock_dir[0] = '\0';
	s->nr = 0;
}
