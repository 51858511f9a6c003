/*
 * bench/idle.S: the memory row's payload. A PVH ELF (so vmm and QEMU's microvm boot the very
 * same file) whose first instruction writes '!' to the UART's THR at 0x3F8, telling the bench
 * that guest code runs; then it halts forever with interrupts off, so the VMM stays alive
 * until the bench reads its /proc/PID/smaps and sends SIGTERM. Built by bench/boot at run time.
 */
	.section .note.Xen, "a", @note
	.balign 4
	.long	4		/* name size: "Xen\0" */
	.long	4		/* descriptor size: a 32-bit entry address */
	.long	18		/* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz	"Xen"
	.long	_start

	.text
	.code32
	.globl	_start
_start:
	movw	$0x3f8, %dx
	movb	$'!', %al
	outb	%al, %dx
	cli
halt:
	hlt
	jmp	halt

	.section .note.GNU-stack, "", @progbits
