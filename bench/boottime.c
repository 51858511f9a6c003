/*
 * bench/boottime.c: times one VMM run for bench/boot.
 *
 *   boottime [-l LABEL] [-m MARKER] [-q] [-t SECS] [-k] [-i FILE] -- COMMAND [ARGS...]
 *
 * Reads the monotonic clock, spawns COMMAND at once with stdin on /dev/null (-i: on FILE) and
 * stdout and stderr on one pipe, copies what arrives on the pipe to its own stdout (unless -q)
 * and notes when MARKER (default "!") first appears in that stream and when COMMAND exits.
 * Then it prints
 *
 *   BOOTTIME label=LABEL marker_us=N exit_us=N status=N [kvm_exits=N kvm_io_exits=N ...] bytes=N
 *
 * on a line of its own (marker_us=-1 when MARKER never came; status is the exit status, or
 * 128+N after signal N; bytes is how much COMMAND wrote to the pipe, stdout and stderr). With -k it
 * also reads, at the moment MARKER arrives, KVM's statistics for COMMAND's VM from debugfs
 * (/sys/kernel/debug/kvm/PID-FD/, mounted by the caller): exits of every kind up to that point,
 * whoever the VMM is. With -t, COMMAND is killed (SIGKILL) after SECS seconds. Built by bench/boot
 * with the host's cc (statically, so it runs in the nested harness's L1 as it is), or with
 * aarch64-linux-gnu-gcc for an arm64 L1; bench/run uses it too.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* x86 names, then arm64 ones; a statistic the host's KVM lacks reads as -1. */
static const char *const kvm_stats[] = {
        "exits",         "io_exits",       "mmio_exits",       "halt_exits",
        "irq_exits",     "insn_emulation", "pf_fixed",         "pages_4k",
        "pages_2m",      "mmio_exit_user", "mmio_exit_kernel", "wfi_exit_stat",
        "hvc_exit_stat",
};
#define NR_KVM_STATS (sizeof(kvm_stats) / sizeof(kvm_stats[0]))

static pid_t child;

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void on_alarm(int sig)
{
	(void)sig;
	if (child > 0)
		kill(child, SIGKILL);
}

static void usage(void)
{
	fprintf(stderr, "usage: boottime [-l LABEL] [-m MARKER] [-q] [-t SECS] [-k] [-i FILE] -- "
	                "COMMAND [ARGS...]\n");
	exit(2);
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads KVM's debugfs statistics of @pid's VM into @val; returns 0 when found. */
static int read_kvm_stats(pid_t pid, long long *val)
{
	char prefix[32], path[512];
	struct dirent *de;
	DIR *d;
	int found = -1;

	d = opendir("/sys/kernel/debug/kvm");
	if (!d)
		return -1;
	snprintf(prefix, sizeof(prefix), "%d-", (int)pid);
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, prefix, strlen(prefix)) != 0)
			continue;
		for (size_t i = 0; i < NR_KVM_STATS; i++) {
			FILE *f;

			snprintf(path, sizeof(path), "/sys/kernel/debug/kvm/%s/%s", de->d_name,
			         kvm_stats[i]);
			f = fopen(path, "r");
			val[i] = -1;
			if (f) {
				if (fscanf(f, "%lld", &val[i]) != 1)
					val[i] = -1;
				fclose(f);
			}
		}
		found = 0;
		break;
	}
	closedir(d);
	return found;
}

int main(int argc, char **argv)
{
	const char *marker = "!", *label = "-", *input = "/dev/null";
	int quiet = 0, want_kvm = 0, timeout = 0, opt, fds[2], status;
	posix_spawn_file_actions_t fa;
	long long t0, t_marker = -1, t_exit, kvm[NR_KVM_STATS];
	int have_kvm = -1;
	char buf[65536], *win;
	size_t mlen, have = 0;
	long long bytes = 0;

	while ((opt = getopt(argc, argv, "+l:m:qt:ki:")) != -1) {
		switch (opt) {
		case 'l':
			label = optarg;
			break;
		case 'm':
			marker = optarg;
			break;
		case 'q':
			quiet = 1;
			break;
		case 't':
			timeout = atoi(optarg);
			break;
		case 'k':
			want_kvm = 1;
			break;
		case 'i':
			input = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind >= argc || !*marker)
		usage();
	mlen = strlen(marker);
	/* The tail of the stream that may hold the start of a marker split across reads. */
	win = malloc(mlen + sizeof(buf));
	if (!win || pipe2(fds, O_CLOEXEC) < 0) {
		perror("boottime");
		return 1;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, input, O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
	posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
	signal(SIGPIPE, SIG_IGN);

	t0 = now_ns();
	errno = posix_spawnp(&child, argv[optind], &fa, NULL, argv + optind, environ);
	if (errno) {
		fprintf(stderr, "boottime: cannot run %s: %s\n", argv[optind], strerror(errno));
		return 1;
	}
	close(fds[1]);
	if (timeout > 0) {
		signal(SIGALRM, on_alarm);
		alarm((unsigned)timeout);
	}

	for (;;) {
		ssize_t n = read(fds[0], buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		bytes += n;
		if (t_marker < 0) {
			long long t = now_ns();

			memcpy(win + have, buf, (size_t)n);
			have += (size_t)n;
			if (memmem(win, have, marker, mlen)) {
				t_marker = t;
				if (want_kvm)
					have_kvm = read_kvm_stats(child, kvm);
			} else if (have >= mlen) {
				memmove(win, win + have - (mlen - 1), mlen - 1);
				have = mlen - 1;
			}
		}
		if (!quiet)
			write_all(1, buf, (size_t)n);
	}
	while (waitpid(child, &status, 0) < 0) {
		if (errno != EINTR) {
			perror("boottime: waitpid");
			return 1;
		}
	}
	t_exit = now_ns();
	alarm(0);

	printf("\nBOOTTIME label=%s marker_us=%lld exit_us=%lld status=%d", label,
	       t_marker < 0 ? -1 : (t_marker - t0) / 1000, (t_exit - t0) / 1000,
	       WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	if (want_kvm && have_kvm == 0)
		for (size_t i = 0; i < NR_KVM_STATS; i++)
			printf(" kvm_%s=%lld", kvm_stats[i], kvm[i]);
	printf(" bytes=%lld\n", bytes);
	return 0;
}
