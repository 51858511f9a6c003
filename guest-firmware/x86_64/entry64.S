/*
 * Entry for plain ELF64 payloads: vmm enters in 64-bit long mode with paging on, interrupts
 * off and RSI = the zero page, and gives no stack. Record the entry state, set up a stack,
 * clear .bss and call fw_main(RSI).
 */
#include "entry_state.h"

	.section .text.entry, "ax"
	.code64
	.globl _start
_start:
	movq	%rsi, fw_entry_state + ES_BOOT_ARG(%rip)
	leaq	fw_stack_top(%rip), %rsp
	pushfq
	popq	fw_entry_state + ES_RFLAGS(%rip)
	xorl	%eax, %eax
	movw	%cs, %ax
	movq	%rax, fw_entry_state + ES_CS(%rip)
	movw	%ds, %ax
	movq	%rax, fw_entry_state + ES_DS(%rip)
	movw	%es, %ax
	movq	%rax, fw_entry_state + ES_ES(%rip)
	movw	%ss, %ax
	movq	%rax, fw_entry_state + ES_SS(%rip)
	movq	%cr0, %rax
	movq	%rax, fw_entry_state + ES_CR0(%rip)
	movq	%cr4, %rax
	movq	%rax, fw_entry_state + ES_CR4(%rip)
	movl	$MSR_EFER, %ecx
	rdmsr
	movl	%eax, fw_entry_state + ES_EFER(%rip)
	movl	%edx, fw_entry_state + ES_EFER + 4(%rip)

	cld
	leaq	__bss_start(%rip), %rdi
	leaq	__bss_end(%rip), %rcx
	subq	%rdi, %rcx
	xorl	%eax, %eax
	rep stosb

	movq	fw_entry_state + ES_BOOT_ARG(%rip), %rdi
	call	fw_main
	jmp	fw_halt

	/* In .data, not .bss: it is written before .bss is cleared. */
	.data
	.balign 8
	.globl fw_entry_state
fw_entry_state:
	.fill	ES_SIZE, 1, 0

	.bss
	.balign 16
fw_stack:
	.space	STACK_SIZE
fw_stack_top:

	.section .note.GNU-stack, "", @progbits
