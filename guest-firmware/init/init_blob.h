/*
 * The test-run init (guest-firmware/init), a static executable for this host's arch, embedded in
 * vmm as bytes by embed.py; vmm writes it into the initramfs it generates for --run as /init.
 * Read-only data, so any thread may read it.
 */
#ifndef VMM_GUEST_FIRMWARE_INIT_INIT_BLOB_H
#define VMM_GUEST_FIRMWARE_INIT_INIT_BLOB_H

/* The init's ELF file: vmm_init_binary[0..vmm_init_binary_size). */
extern const unsigned char vmm_init_binary[];
extern const unsigned long vmm_init_binary_size;

#endif
