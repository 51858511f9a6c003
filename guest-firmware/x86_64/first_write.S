/*
 * first_write: a PVH payload (so QEMU's microvm can boot it too) for measuring the time to the
 * first guest instruction. Its very first instruction writes '!' to the UART's THR (no LSR
 * poll), then it writes 0 to the debug-exit port 0xF4 (vmm exits 0; QEMU's isa-debug-exit exits
 * (0 << 1) | 1 = 1) and halts with interrupts off in case neither ended the VM.
 */
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
	movw	$0x3f8, %dx
	movb	$'!', %al
	outb	%al, %dx
	movw	$0xf4, %dx
	xorl	%eax, %eax
	outb	%al, %dx
1:	cli
	hlt
	jmp	1b

	.section .note.GNU-stack, "", @progbits
