/*
 * A small ACPI Machine Language (AML) writer for the DSDT: names, scopes, devices, packages,
 * integers, strings and resource templates, enough to describe a static machine (ACPI 6.5,
 * chapter 20 for the encodings, 6.4 for resource descriptors). Writes into a fixed buffer and
 * records an overflow instead of failing each call; check aml_ok() at the end.
 */
#ifndef VMM_ARCH_X86_64_AML_H
#define VMM_ARCH_X86_64_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AML_MAX_DEPTH 8

struct aml {
	uint8_t *buf;
	size_t cap, len;
	bool overflow;
	unsigned depth;
	size_t open[AML_MAX_DEPTH]; /* where each open PkgLength was reserved */
};

void aml_init(struct aml *a, uint8_t *buf, size_t cap);
/* False after an overflow or with blocks left open. */
bool aml_ok(const struct aml *a);

void aml_bytes(struct aml *a, const void *data, size_t len);
/* A NameString: "\\_SB.PCI0", "_HID", "\\_S5"; segments shorter than 4 are padded with '_'. */
void aml_name_string(struct aml *a, const char *path);
/* The shortest integer encoding (ZeroOp, OneOp, BytePrefix ... QWordPrefix). */
void aml_integer(struct aml *a, uint64_t value);
void aml_string(struct aml *a, const char *s);
/* The 32-bit compressed EISA ID of e.g. "PNP0A08", as an integer. */
uint32_t aml_eisaid_value(const char *id);
void aml_eisaid(struct aml *a, const char *id);

/* Name(path, <next term>): call, then write the value. */
void aml_name(struct aml *a, const char *path);

/* Blocks with a PkgLength: open, write the contents, then aml_end(). */
void aml_scope(struct aml *a, const char *path);
void aml_device(struct aml *a, const char *path);
/* Package(count){...}: write exactly @count elements before aml_end(). */
void aml_package(struct aml *a, unsigned count);
/* ResourceTemplate(){...}: descriptors below, aml_end() adds the end tag. */
void aml_resource_template(struct aml *a);
void aml_end(struct aml *a);

/* Resource descriptors, inside aml_resource_template(). */
void aml_io(struct aml *a, uint16_t base, uint8_t len);
void aml_irq_noflags(struct aml *a, unsigned irq);
void aml_memory32_fixed(struct aml *a, uint32_t base, uint32_t len);
/* Extended Interrupt, consumer, exclusive. */
void aml_interrupt(struct aml *a, uint32_t gsi, bool edge, bool active_low);
void aml_word_bus_number(struct aml *a, uint16_t min, uint16_t max);
/* Producer windows for a bridge's _CRS (min fixed, max fixed, read-write). */
void aml_dword_memory(struct aml *a, uint32_t min, uint32_t len);
void aml_qword_memory(struct aml *a, uint64_t min, uint64_t len);

#endif
