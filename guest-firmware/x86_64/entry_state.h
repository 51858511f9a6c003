/* Offsets into struct fw_entry_state (fw.h) for the assembly entry code. */
#ifndef VMM_GUEST_FIRMWARE_X86_64_ENTRY_STATE_H
#define VMM_GUEST_FIRMWARE_X86_64_ENTRY_STATE_H

#define ES_BOOT_ARG 0
#define ES_CS       8
#define ES_DS       16
#define ES_ES       24
#define ES_SS       32
#define ES_RFLAGS   40
#define ES_CR0      48
#define ES_CR4      56
#define ES_EFER     64
#define ES_SIZE     72

#define MSR_EFER   0xC0000080
#define STACK_SIZE 16384

#endif
