/* The host's side of a real TAP interface in the tests: its queue count and link state. */
#ifndef VMM_TESTS_SUPPORT_TAP_HOST_H
#define VMM_TESTS_SUPPORT_TAP_HOST_H

/* The transmit queues interface @name has (its real_num_tx_queues), from sysfs. */
int tap_host_tx_queues(const char *name);

/* Sets interface @name up; returns 0 or -1 (errno set). */
int tap_host_link_up(const char *name);

#endif
