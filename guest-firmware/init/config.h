/*
 * The test-run init's configuration (vmm --run): the files vmm writes under /vmm/ in the
 * initramfs it generates, and the parsers that check them. Pure: no I/O and no state, so the
 * unit suite init_config feeds them hostile bytes; the init (init.c) reads the files and
 * reports a parser's one-line message as its error.
 *
 * File formats (every file is bytes, read whole; a file over its size limit is an error):
 *   /vmm/modules  module paths inside the initramfs in load order, each followed by '\n'; may
 *                 be empty. A path is absolute and canonical (see init_parse_modules).
 *   /vmm/mounts   records of three NUL-terminated fields, TAG\0GUESTDIR\0MODE\0, MODE "ro" or
 *                 "rw". The first record is INIT_ROOT_TAG\0/\0ro\0.
 *   /vmm/cwd      the directory to run the command in: an absolute path, no trailing newline.
 *   /vmm/cmd      the command for /bin/sh -c: any bytes but NUL.
 *   /vmm/term     the TERM value; optional (INIT_DEFAULT_TERM when absent).
 *   /vmm/save-ready  present in the initramfs of vmm --save-ready, which has no mounts, cwd,
 *                 cmd or term file: the init then says "waiting" on the status port and reads
 *                 them from it (the host sends them after restoring the snapshot it took then),
 *                 as records (init_parse_records), and writes them to /vmm/ itself.
 */
#ifndef VMM_GUEST_FIRMWARE_INIT_CONFIG_H
#define VMM_GUEST_FIRMWARE_INIT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#define INIT_MODULES_FILE "/vmm/modules"
#define INIT_MOUNTS_FILE  "/vmm/mounts"
#define INIT_CWD_FILE     "/vmm/cwd"
#define INIT_CMD_FILE     "/vmm/cmd"
#define INIT_TERM_FILE    "/vmm/term"
#define INIT_READY_FILE   "/vmm/save-ready"

#define INIT_ROOT_TAG     "vmm-root" /* the host's /, mounted read-only as the guest's / */
#define INIT_DEFAULT_TERM "linux"

/* virtio-console port names (the ports' "name" in sysfs). */
#define INIT_PORT_STATUS "vmm.status"
#define INIT_PORT_STDIN  "vmm.stdin"
#define INIT_PORT_STDOUT "vmm.stdout"
#define INIT_PORT_STDERR "vmm.stderr"

#define INIT_MAX_MODULES 256
#define INIT_MAX_MOUNTS  32
#define INIT_PATH_MAX    4096 /* PATH_MAX: a path has at most 4095 bytes */
#define INIT_TAG_MAX     36   /* virtio-fs tag bytes */
#define INIT_TERM_MAX    64
#define INIT_CMD_MAX     (128 * 1024 - 1) /* MAX_ARG_STRLEN, which counts the NUL */

/* Size limits of the files: anything longer is an error. */
#define INIT_MODULES_FILE_MAX (INIT_MAX_MODULES * INIT_PATH_MAX)
#define INIT_MOUNTS_FILE_MAX  (INIT_MAX_MOUNTS * (INIT_TAG_MAX + INIT_PATH_MAX + 4))
#define INIT_CWD_FILE_MAX     (INIT_PATH_MAX - 1)
#define INIT_CMD_FILE_MAX     INIT_CMD_MAX
#define INIT_TERM_FILE_MAX    INIT_TERM_MAX

/*
 * The run's files as the status port carries them to a --save-ready init: records, each a
 * header line "NAME LENGTH\n" (NAME one of mounts, cwd, cmd, term; LENGTH in decimal, no
 * leading zero) followed by LENGTH bytes, and last the line "end 0\n".
 */
#define INIT_RECORD_HEADER_MAX 24 /* "mounts 1234567\n" and room to spare */
#define INIT_MAX_RECORDS       4
#define INIT_RECORDS_MAX                                                                           \
	(INIT_MOUNTS_FILE_MAX + INIT_CWD_FILE_MAX + INIT_CMD_FILE_MAX + INIT_TERM_FILE_MAX +       \
	 (INIT_MAX_RECORDS + 1) * INIT_RECORD_HEADER_MAX)

/* finit_module() flag for a compressed module file (Linux 5.17; older headers lack it). */
#ifndef MODULE_INIT_COMPRESSED_FILE
#define MODULE_INIT_COMPRESSED_FILE 4
#endif

struct init_mount {
	const char *tag; /* 1 to INIT_TAG_MAX bytes, no control characters */
	const char *dir; /* absolute and canonical; "/" only for the root */
	bool read_only;
};

/*
 * Splits the /vmm/modules bytes @buf[0..len) in place (each '\n' becomes a NUL) into @paths
 * (at most @max entries; they point into @buf) and sets *@count. Every line ends in '\n' and
 * holds a path that is absolute and canonical (no empty, "." or ".." component, no trailing
 * '/'), shorter than INIT_PATH_MAX, without control characters, whose last component is a name
 * ending in .ko, .ko.xz, .ko.zst or .ko.gz. Returns 0, -EINVAL for a
 * malformed file or -E2BIG for more than @max lines, with one line in @err.
 */
int init_parse_modules(char *buf, size_t len, const char **paths, unsigned max, unsigned *count,
                       char *err, size_t errlen);

/* The finit_module() flags for the module file @path: MODULE_INIT_COMPRESSED_FILE or 0. */
unsigned init_module_flags(const char *path);

/*
 * Parses the /vmm/mounts bytes @buf[0..len) into @mounts (at most @max; the strings point into
 * @buf, which is not changed) and sets *@count. The file is whole records, so it is empty or
 * ends in a NUL, and holds a multiple of 3 fields. The first record is the root (INIT_ROOT_TAG,
 * "/", "ro"); the others have distinct tags other than the root's, distinct directories other
 * than "/" and outside /proc, /sys and /dev. Returns 0, -EINVAL for a malformed file or -E2BIG
 * for more than @max records, with one line in @err.
 */
int init_parse_mounts(const char *buf, size_t len, struct init_mount *mounts, unsigned max,
                      unsigned *count, char *err, size_t errlen);

/* One record of the status port's stream: a file of /vmm/ (its name without the directory). */
struct init_record {
	const char *name; /* "mounts", "cwd", "cmd" or "term" (static strings) */
	const char *data; /* into the stream's buffer; not NUL-terminated */
	size_t len;
};

/*
 * Parses the records the host sent so far, @buf[0..len) (see INIT_RECORDS_MAX above), into
 * @out (INIT_MAX_RECORDS entries; data points into @buf, which is not changed) and sets
 * *@count. Returns 0 when the stream is whole (it ends with the end line, nothing after it,
 * and holds mounts, cwd and cmd, each name once, each within its file's size limit), -EAGAIN
 * when it is a correct beginning that needs more bytes, or -EINVAL for a malformed one, with
 * one line in @err. The contents are checked later, as the files are.
 */
int init_parse_records(const char *buf, size_t len, struct init_record *out, unsigned *count,
                       char *err, size_t errlen);

/*
 * Checks the /vmm/cwd bytes @buf[0..len): an absolute, canonical path shorter than
 * INIT_PATH_MAX without NUL bytes or a trailing newline (other bytes are allowed: it is the
 * host's directory name). Returns 0 or -EINVAL with one line in @err.
 */
int init_check_cwd(const char *buf, size_t len, char *err, size_t errlen);

/*
 * Checks the /vmm/cmd bytes @buf[0..len): at most INIT_CMD_MAX bytes, no NUL (it becomes one
 * argument). Returns 0 or -EINVAL with one line in @err.
 */
int init_check_cmd(const char *buf, size_t len, char *err, size_t errlen);

/*
 * Checks the /vmm/term bytes @buf[0..len): 1 to INIT_TERM_MAX characters of [A-Za-z0-9._+-].
 * Returns 0 or -EINVAL with one line in @err.
 */
int init_check_term(const char *buf, size_t len, char *err, size_t errlen);

#endif
