/*
 * Entry for PVH payloads. The Xen ELF note XEN_ELFNOTE_PHYS32_ENTRY (type 18) names the 32-bit
 * entry; vmm enters it in 32-bit protected mode, paging off, CS 0x10, DS 0x18 and EBX = the
 * struct hvm_start_info. Record the entry state, clear .bss, build an identity map of 0..4 GiB
 * with 2 MiB pages, switch to long mode with our own GDT and call fw_main(EBX).
 */
#include "entry_state.h"

#define GDT_CODE64 0x10
#define GDT_DATA   0x18
#define CR0_PE     0x00000001
#define CR0_PG     0x80000000
#define CR4_PAE    0x00000020
#define EFER_LME   0x00000100
#define PTE_P_RW   0x003
#define PTE_PS     0x080

	.section .note.Xen, "a", @note
	.balign 4
	.long	4		/* name size, "Xen\0" */
	.long	4		/* descriptor size: a 32-bit entry address */
	.long	18		/* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz	"Xen"
	.long	_start

	.section .text.entry, "ax"
	.code32
	.globl _start
_start:
	movl	%ebx, fw_entry_state + ES_BOOT_ARG
	movl	$fw_stack_top, %esp
	pushfl
	popl	fw_entry_state + ES_RFLAGS
	xorl	%eax, %eax
	movw	%cs, %ax
	movl	%eax, fw_entry_state + ES_CS
	movw	%ds, %ax
	movl	%eax, fw_entry_state + ES_DS
	movw	%es, %ax
	movl	%eax, fw_entry_state + ES_ES
	movw	%ss, %ax
	movl	%eax, fw_entry_state + ES_SS
	movl	%cr0, %eax
	movl	%eax, fw_entry_state + ES_CR0
	movl	%cr4, %eax
	movl	%eax, fw_entry_state + ES_CR4
	movl	$MSR_EFER, %ecx
	rdmsr
	movl	%eax, fw_entry_state + ES_EFER
	movl	%edx, fw_entry_state + ES_EFER + 4

	cld
	movl	$__bss_start, %edi
	movl	$__bss_end, %ecx
	subl	%edi, %ecx
	xorl	%eax, %eax
	rep stosb

	/* PML4[0] -> PDPT; PDPT[0..3] -> PD pages; PD[i] = i * 2 MiB, present, writable, large. */
	movl	$pvh_pdpt + PTE_P_RW, pvh_pml4
	movl	$pvh_pd, %eax
	orl	$PTE_P_RW, %eax
	xorl	%ecx, %ecx
1:	movl	%eax, pvh_pdpt(, %ecx, 8)
	addl	$4096, %eax
	incl	%ecx
	cmpl	$4, %ecx
	jne	1b
	movl	$(PTE_P_RW | PTE_PS), %eax
	xorl	%ecx, %ecx
2:	movl	%eax, pvh_pd(, %ecx, 8)
	addl	$0x200000, %eax
	incl	%ecx
	cmpl	$2048, %ecx
	jne	2b

	lgdt	pvh_gdt_desc
	movl	%cr4, %eax
	orl	$CR4_PAE, %eax
	movl	%eax, %cr4
	movl	$pvh_pml4, %eax
	movl	%eax, %cr3
	movl	$MSR_EFER, %ecx
	rdmsr
	orl	$EFER_LME, %eax
	wrmsr
	movl	%cr0, %eax
	orl	$(CR0_PG | CR0_PE), %eax
	movl	%eax, %cr0
	ljmp	$GDT_CODE64, $long_mode

	.code64
long_mode:
	movl	$GDT_DATA, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movl	%eax, %fs
	movl	%eax, %gs
	leaq	fw_stack_top(%rip), %rsp
	movq	fw_entry_state + ES_BOOT_ARG(%rip), %rdi
	call	fw_main
	jmp	fw_halt

	/* In .data: the CPU sets the accessed bits when the segments are loaded. */
	.data
	.balign 8
pvh_gdt:
	.quad	0			/* null */
	.quad	0			/* unused */
	.quad	0x00af9a000000ffff	/* 0x10: 64-bit code */
	.quad	0x00cf92000000ffff	/* 0x18: flat data */
pvh_gdt_end:
pvh_gdt_desc:
	.word	pvh_gdt_end - pvh_gdt - 1
	.long	pvh_gdt

	.balign 8
	.globl fw_entry_state
fw_entry_state:
	.fill	ES_SIZE, 1, 0

	.bss
	.balign 4096
pvh_pml4:
	.space	4096
pvh_pdpt:
	.space	4096
pvh_pd:
	.space	4 * 4096
	.balign 16
fw_stack:
	.space	STACK_SIZE
fw_stack_top:

	.section .note.GNU-stack, "", @progbits
