/*
 * Snapshot state files: the one format in which every part of a VM (vCPUs, irqchip, each
 * device) saves and loads its state. A file is a header and tagged sections; each part writes
 * its sections with a struct snap_writer and reads them back through a struct snap_cursor.
 *
 * Format (every integer little-endian):
 *   header, 24 bytes:  "VMMSTATE" | u32 format version (SNAP_FORMAT_VERSION) |
 *                      u32 architecture (ELF e_machine: 62 x86_64, 183 aarch64) |
 *                      u64 length of everything after the header
 *   sections:          4-byte tag of printable ASCII ("VCPU", "PIC ") | u32 instance (vCPU
 *                      index, device index...) | u32 payload length | u32 reserved, 0 |
 *                      payload | zero padding to a multiple of 8
 *   last section:      tag "END ", instance 0, a 4-byte payload: the zlib crc32 of every byte
 *                      of the file before this section's header. Nothing follows it.
 * A (tag, instance) pair appears at most once; a file is at most SNAP_FILE_MAX bytes and holds
 * at most SNAP_MAX_SECTIONS sections (END included).
 *
 * A file is hostile input: snap_reader_parse() checks all of it (bounds, tags, reserved
 * fields, padding, duplicates, END and its checksum) before any section is handed out, and a
 * cursor never reads outside its section's payload. Error lines are one line of ASCII.
 *
 * Threads: a writer, a reader and its cursors belong to whoever made them and are used by one
 * thread at a time; nothing here locks or keeps global state. Several readers may share one
 * buffer given to snap_reader_parse(), which only reads it.
 */
#ifndef VMM_VMM_SNAPSHOT_FILE_H
#define VMM_VMM_SNAPSHOT_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/util.h"

#define SNAP_MAGIC          "VMMSTATE"
#define SNAP_FORMAT_VERSION 1
#define SNAP_HEADER_SIZE    24
#define SNAP_SECTION_HEADER 16 /* tag, instance, length, reserved */
#define SNAP_FILE_MAX_MIB   64
#define SNAP_FILE_MAX       (SNAP_FILE_MAX_MIB * MIB)
#define SNAP_MAX_SECTIONS   4096
#define SNAP_END_TAG        "END "

/* The architectures, as ELF e_machine numbers. */
#define SNAP_ARCH_X86_64  62
#define SNAP_ARCH_AARCH64 183
#if defined(__x86_64__)
#define SNAP_ARCH_HOST SNAP_ARCH_X86_64
#elif defined(__aarch64__)
#define SNAP_ARCH_HOST SNAP_ARCH_AARCH64
#endif

/*
 * A file being built in a growable heap buffer. Running out of memory, growing past
 * SNAP_FILE_MAX or opening more than SNAP_MAX_SECTIONS sections is remembered (the puts after it
 * do nothing) and reported by snap_writer_finish()/snap_writer_save(), so a part's save code
 * need not check each put. Using it wrongly (a put outside a section, a section begun inside
 * another or after finish, a tag that is not 4 printable characters or is "END ") is a
 * programming error and asserts.
 */
struct snap_writer {
	uint8_t *buf;
	size_t len, cap;
	size_t open;          /* offset of the open section's header */
	bool in_section;      /* between snap_begin() and snap_end() */
	unsigned nr_sections; /* begun, END not counted */
	int error;            /* sticky: 0, -ENOMEM, -EFBIG or -E2BIG */
	bool finished;        /* END appended: snap_writer_finish() ran */
};

/* Starts an empty file for a guest of @arch (SNAP_ARCH_*). */
void snap_writer_init(struct snap_writer *w, uint32_t arch);
/* Opens section (@tag, @instance); @tag is 4 characters ("PIC "). Another must not be open. */
void snap_begin(struct snap_writer *w, const char *tag, uint32_t instance);
/* Append to the open section's payload. */
void snap_put_u8(struct snap_writer *w, uint8_t v);
void snap_put_u16(struct snap_writer *w, uint16_t v);
void snap_put_u32(struct snap_writer *w, uint32_t v);
void snap_put_u64(struct snap_writer *w, uint64_t v);
void snap_put_bytes(struct snap_writer *w, const void *p, size_t n);
/* Closes the open section (pads it). */
void snap_end(struct snap_writer *w);
/*
 * Appends END with the checksum and checks the result as snap_reader_parse() would (so a
 * duplicate (tag, instance) is found here, not at load). Sets *@data and *@len to the file's
 * bytes, valid until snap_writer_free(); no more sections can be added. Callable again (it
 * hands out the same bytes). Returns 0, or -errno with one line in @err: -ENOMEM, -EFBIG or
 * -E2BIG for a sticky error, -EINVAL for a file that would not load.
 */
int snap_writer_finish(struct snap_writer *w, const uint8_t **data, size_t *len, char *err,
                       size_t errlen) MUST_CHECK;
/*
 * snap_writer_finish(), then writes the file to @path atomically: into "@path.tmp" (created
 * with O_EXCL, mode 0600, so a stale one from a crash is reported, not reused), fsync, rename
 * over @path, fsync of the directory. On failure @path is untouched and the .tmp is removed.
 * Returns 0 or -errno with one line in @err naming the path.
 */
int snap_writer_save(struct snap_writer *w, const char *path, char *err, size_t errlen) MUST_CHECK;
/* Frees the buffer; safe on a zeroed struct and twice. */
void snap_writer_free(struct snap_writer *w);

struct snap_entry; /* one section of a parsed file (snapshot_file.c) */

/* A parsed file: its bytes and an index of its sections sorted by (tag, instance). */
struct snap_reader {
	const uint8_t *data;
	size_t len;
	uint32_t arch;
	struct snap_entry *index;
	unsigned nr;    /* sections in the index; END is not one */
	uint8_t *owned; /* what snap_reader_load() read, freed with the reader */
};

/*
 * One section's payload being read. Reading past its end reads zeros and marks the cursor
 * overrun; snap_cursor_finish() then fails. tag and instance name the section.
 */
struct snap_cursor {
	const uint8_t *p;
	uint32_t len, pos;
	bool overrun;
	char tag[5]; /* NUL-terminated */
	uint32_t instance;
};

/*
 * Reads and checks the state file @path written for @expected_arch (SNAP_ARCH_*): a regular
 * file (a FIFO or a device is refused without blocking) of at most SNAP_FILE_MAX bytes, read
 * whole, then snap_reader_parse(). Returns 0, or -errno with one line in @err naming @path;
 * -EINVAL for a file that is not a valid state file. On failure @r is zeroed.
 */
int snap_reader_load(struct snap_reader *r, const char *path, uint32_t expected_arch, char *err,
                     size_t errlen) MUST_CHECK;
/*
 * Checks the @len bytes at @buf (file contents; not copied: they must outlive @r) written for
 * @expected_arch, all of it before returning: header, every section inside the file with a
 * printable tag, a zero reserved field and zero padding, no (tag, instance) twice, one END last
 * with a matching checksum. Returns 0, -ENOMEM, or -EINVAL with one line in @err ("checksum
 * mismatch: the file is corrupt", "truncated in section 'VCPU' #1"). On failure @r is zeroed.
 */
int snap_reader_parse(struct snap_reader *r, const uint8_t *buf, size_t len, uint32_t expected_arch,
                      char *err, size_t errlen) MUST_CHECK;
/* Frees the index (and what load read); safe on a zeroed struct and twice. */
void snap_reader_free(struct snap_reader *r);

/*
 * Points @c at section (@tag, @instance): 0, or -ENOENT when the file has none (then @c is an
 * empty cursor: reading from it overruns).
 */
int snap_section(const struct snap_reader *r, const char *tag, uint32_t instance,
                 struct snap_cursor *c) MUST_CHECK;
/* How many sections have @tag; NULL: all of them. */
unsigned snap_count(const struct snap_reader *r, const char *tag);
/*
 * Iterates over the sections with @tag (NULL: every section) in order of (tag, instance), so a
 * part can refuse instances it does not expect: start with *@iter = 0; each call points @c at
 * the next section and returns true, or returns false at the end.
 *   size_t it = 0; while (snap_next(r, "VCPU", &it, &c)) if (c.instance >= nr) ...
 */
bool snap_next(const struct snap_reader *r, const char *tag, size_t *iter, struct snap_cursor *c);

/* Reads from the payload; past its end they read zeros and mark @c overrun. */
uint8_t snap_get_u8(struct snap_cursor *c);
uint16_t snap_get_u16(struct snap_cursor *c);
uint32_t snap_get_u32(struct snap_cursor *c);
uint64_t snap_get_u64(struct snap_cursor *c);
/* Copies @n bytes into @p (all zeros when fewer than @n are left). */
void snap_get_bytes(struct snap_cursor *c, void *p, size_t n);
/* Bytes of the payload not yet read: bound a count read from the file with it before using it. */
size_t snap_cursor_left(const struct snap_cursor *c);
/*
 * 0 when the whole payload was read and nothing past it; otherwise -EINVAL with one line in
 * @err: "section 'VCPU' #0: 12 bytes left over" or "section 'VCPU' #0: shorter than expected".
 */
int snap_cursor_finish(const struct snap_cursor *c, char *err, size_t errlen) MUST_CHECK;

#endif
