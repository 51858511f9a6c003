/*
 * The kernel command line vmm passes: the user's --cmdline with vmm's default parameters
 * (config.h) added for each key the user did not set. Pure; unit-tested with config.c.
 */
#include <stdlib.h>
#include <string.h>

#include "arch/arch.h"
#include "vmm/config.h"
#include "vmm/util.h"

const char *config_default_args(const struct vm_config *cfg)
{
	if (cfg->cmdline_verbatim)
		return "";
	/*
	 * --save-ready: pages the guest freed while it booted (the compressed kernel, the
	 * initramfs) become zeros, holes in the snapshot's ram that no restore copies. Nested,
	 * that took the ram file from 75 to 56 MiB and its copy at restore from 1.3-1.5 s to
	 * 0.2-0.4 s (the garbage was scattered into many short runs).
	 */
	if (cfg->save_ready)
		return CONFIG_DEFAULT_ARGS ARCH_DEFAULT_ARGS CONFIG_SPEED_ARGS
		        " quiet init_on_free=1";
	/* --run: the kernel's messages go to a log, and fewer of them cost fewer UART exits. */
	if (config_test_run(cfg))
		return CONFIG_DEFAULT_ARGS ARCH_DEFAULT_ARGS CONFIG_SPEED_ARGS " quiet";
	return cfg->console == CONSOLE_VIRTIO
	               ? "console=hvc0 panic=-1 reboot=k" ARCH_DEFAULT_ARGS CONFIG_SPEED_ARGS
	               : CONFIG_DEFAULT_ARGS ARCH_DEFAULT_ARGS CONFIG_SPEED_ARGS;
}

/*
 * The next word of a kernel command line at *@p, its length in *@len; NULL at the end or at a
 * "--" (the words after it are init's).
 */
static const char *next_param(const char **p, size_t *len)
{
	const char *word;

	*p += strspn(*p, " ");
	*len = strcspn(*p, " ");
	if (!*len || (*len == 2 && strncmp(*p, "--", 2) == 0))
		return NULL;
	word = *p;
	*p += *len;
	return word;
}

/* True when the space-separated parameter list @cmdline sets @key ("key" or "key=..."). */
static bool has_param(const char *cmdline, const char *key, size_t key_len)
{
	const char *w;
	size_t len;

	while ((w = next_param(&cmdline, &len)))
		if (len >= key_len && strncmp(w, key, key_len) == 0 &&
		    (len == key_len || w[key_len] == '='))
			return true;
	return false;
}

bool config_cmdline_has_value(const char *cmdline, const char *key, const char *value)
{
	size_t key_len = strlen(key), value_len = strlen(value), len;
	const char *p = cmdline ? cmdline : "", *w;

	while ((w = next_param(&p, &len))) {
		const char *v, *end = w + len;

		if (len <= key_len || strncmp(w, key, key_len) != 0 || w[key_len] != '=')
			continue;
		for (v = w + key_len + 1; v < end;) {
			size_t n = MIN(strcspn(v, ","), (size_t)(end - v));

			if (n == value_len && strncmp(v, value, n) == 0)
				return true;
			v += n + 1;
		}
	}
	return false;
}

/* Offset of a standalone "--" separator in @cmdline, or its length when there is none. */
static size_t separator_offset(const char *cmdline)
{
	size_t off = 0;

	while (cmdline[off]) {
		size_t len;

		off += strspn(cmdline + off, " ");
		len = strcspn(cmdline + off, " ");
		if (len == 2 && strncmp(cmdline + off, "--", 2) == 0)
			return off;
		off += len;
	}
	return off;
}

char *config_kernel_cmdline(const char *user, const char *defaults)
{
	size_t split, user_len;
	char *result, *out;

	if (!user)
		user = "";
	if (!*defaults) /* nothing to add: the user's line untouched (--cmdline-verbatim) */
		return strdup(user);
	user_len = strlen(user);
	split = separator_offset(user);
	result = malloc(user_len + strlen(defaults) + 3);
	if (!result)
		return NULL;
	memcpy(result, user, split);
	out = result + split;
	while (out > result && out[-1] == ' ')
		out--;
	for (const char *p = defaults; *p;) {
		size_t len = strcspn(p, " ");
		size_t key_len = strcspn(p, "=");

		if (!has_param(user, p, MIN(len, key_len))) {
			if (out > result)
				*out++ = ' ';
			memcpy(out, p, len);
			out += len;
		}
		p += len;
		p += strspn(p, " ");
	}
	if (split < user_len) {
		*out++ = ' ';
		memcpy(out, user + split, user_len - split);
		out += user_len - split;
	}
	*out = '\0';
	return result;
}
