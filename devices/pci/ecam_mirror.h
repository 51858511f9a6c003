/*
 * What pci.c calls to keep pci_host_map_ecam's copy current (ecam_mirror.c). Each does nothing
 * while the host is not mirrored.
 */
#ifndef VMM_DEVICES_PCI_ECAM_MIRROR_H
#define VMM_DEVICES_PCI_ECAM_MIRROR_H

#include "devices/pci/pci.h"

/* @d's config space changed (a write, a snapshot load). Host lock held. */
void pci_ecam_mirror_update(struct pci_host *h, const struct pci_device *d);
/* @d was plugged into its slot: its whole page, Status register included. Host lock held. */
void pci_ecam_mirror_fill(struct pci_host *h, const struct pci_device *d);
/* Frees the copy (pci_host_destroy; the guest no longer runs). */
void pci_ecam_mirror_destroy(struct pci_host *h);

#endif
