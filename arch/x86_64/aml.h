/*
 * A small ACPI Machine Language (AML) writer for the DSDT: names, scopes, devices, methods,
 * packages, buffers, integers, strings and resource templates, enough to describe a static
 * machine (ACPI 6.5, chapter 20 for the encodings, 6.4 for resource descriptors).
 *
 * It writes into a fixed caller buffer. A call that would overflow it, or a misuse (a bad name,
 * a descriptor outside a resource template, aml_end() without an open block, too deep
 * nesting), sets a sticky error and makes every later call a no-op, so callers write a whole
 * table and check aml_ok() once at the end. Nothing is written past buf + cap. While a block
 * is open it holds room for its longest length encoding (4 bytes, 13 for buffers), so the
 * buffer needs that much headroom beyond the finished size.
 */
#ifndef VMM_ARCH_X86_64_AML_H
#define VMM_ARCH_X86_64_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AML_MAX_DEPTH 8

struct aml_block {
	size_t start; /* where the block's PkgLength (and, for buffers, size) is reserved */
	uint8_t kind;
};

struct aml {
	uint8_t *buf;
	size_t cap, len;
	bool error;
	unsigned depth;
	struct aml_block open[AML_MAX_DEPTH];
};

void aml_init(struct aml *a, uint8_t *buf, size_t cap);
/* True when no error happened and every block was closed; a->len bytes are then valid AML. */
bool aml_ok(const struct aml *a);

/*
 * Encodes the PkgLength of a block whose contents after the PkgLength are @body bytes (the
 * encoded value counts the PkgLength's own 1-4 bytes). Returns the number of bytes written to
 * @out, or 0 when the block is too long for the 28-bit field.
 */
unsigned aml_pkglength(size_t body, uint8_t out[4]);

/* Raw bytes, e.g. a buffer's contents. */
void aml_bytes(struct aml *a, const void *data, size_t len);
/*
 * A NameString: "_HID", "\\_SB.PCI0", "^PCI0", "\\". Segments are 1-4 characters (A-Z, 0-9,
 * '_', not starting with a digit) and shorter ones are padded with '_'.
 */
void aml_name_string(struct aml *a, const char *path);
/* The shortest encoding: ZeroOp, OneOp, or a Byte/Word/DWord/QWord prefix. */
void aml_integer(struct aml *a, uint64_t value);
/* A String; @s is plain ASCII. */
void aml_string(struct aml *a, const char *s);
/* The compressed EISA ID of e.g. "PNP0A08" (0x080AD041), or 0 when @id is not AAA#### hex. */
uint32_t aml_eisaid_value(const char *id);
/* The compressed EISA ID as a DWord integer. */
void aml_eisaid(struct aml *a, const char *id);

/* Name(path, <next term>): call, then write the value. */
void aml_name(struct aml *a, const char *path);
/* Return(<next term>), inside a method. */
void aml_return(struct aml *a);

/* Blocks: open one, write its contents, then aml_end(). */
void aml_scope(struct aml *a, const char *path);
void aml_device(struct aml *a, const char *path);
/* A not-serialized method taking @nargs (0-7) arguments. */
void aml_method(struct aml *a, const char *path, unsigned nargs);
/* Package(count){...}: write exactly @count (at most 255) elements before aml_end(). */
void aml_package(struct aml *a, unsigned count);
/* Buffer(){...}: raw bytes follow; aml_end() writes the size. */
void aml_buffer(struct aml *a);
/* ResourceTemplate(){...}: descriptors follow; aml_end() adds the end tag (checksum 0). */
void aml_resource_template(struct aml *a);
void aml_end(struct aml *a);

/* Resource descriptors, only inside aml_resource_template(). */
/* IO(Decode16, base, base, 1, len): a fixed range of ports. */
void aml_io(struct aml *a, uint16_t base, uint8_t len);
/* IRQNoFlags(){irq}: an ISA IRQ 0-15, edge-triggered, active-high. */
void aml_irq_noflags(struct aml *a, unsigned irq);
/* Memory32Fixed(ReadWrite, base, len). */
void aml_memory32_fixed(struct aml *a, uint32_t base, uint32_t len);
/* Interrupt(ResourceConsumer, edge or level, high or low, Exclusive){gsi}. */
void aml_interrupt(struct aml *a, uint32_t gsi, bool edge, bool active_low);
/*
 * Bridge windows (ResourceProducer, MinFixed, MaxFixed, PosDecode), [min, min + len - 1]; len
 * must be non-zero and the range must not wrap. Memory windows are read-write, non-cacheable.
 */
void aml_word_bus_number(struct aml *a, uint16_t min, uint32_t len);
void aml_dword_memory(struct aml *a, uint32_t min, uint32_t len);
void aml_qword_memory(struct aml *a, uint64_t min, uint64_t len);

#endif
