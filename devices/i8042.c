/*
 * i8042 keyboard controller with nothing plugged in. It answers the controller commands Linux's
 * i8042 driver sends while probing, so the probe ends without a timeout, and turns the reset
 * pulse (0xFE, or output-port bit 0 cleared) into a machine reset.
 *
 * Choices, made so that Linux gives up on the missing devices quickly:
 * - No AUX port: 0xD3 (AUX loopback) echoes its byte as keyboard data (status bit 5, AUXDATA,
 *   is never set), which __i8042_command() reports as an error at once; the AUX interface
 *   test 0xA9 then answers 0x02 ("clock line stuck high"). Linux treats 0x00, 0xFA and 0xFF
 *   as a working port, anything else as no port, so i8042_check_aux() fails with no timeout.
 * - No keyboard: bytes written to port 0x60 with no controller command pending (keyboard
 *   commands) get no answer. No IRQ 1 is wired to this model, and Linux's PS/2 layer only
 *   hears replies through that IRQ, so a 0xFE NAK would never be seen; it would only linger in
 *   the output buffer and be mistaken for the reply to the next controller command. atkbd's
 *   probe (which runs in the serio thread, off the boot path) times out instead.
 * - The controller has one output buffer: the reply to a controller command replaces unread
 *   output, so an answer the guest skipped cannot be read as the answer to the next command.
 *
 * Locking: kbc->lock guards the state; the reset callback is called after it is dropped.
 * Access sizes: one byte register per port; a wider access uses the low byte, and the other
 * bytes of a read are zero. Every value written is guest-controlled.
 */
#include "devices/i8042.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "vmm/log.h"

#define STATUS_OBF     0x01
#define STATUS_SYS     0x04
#define STATUS_KEYLOCK 0x10 /* set: the keyboard is not inhibited by the key lock */

#define CTR_KBDINT 0x01
#define CTR_SYS    0x04
#define CTR_KBDDIS 0x10
#define CTR_AUXDIS 0x20
#define CTR_XLATE  0x40

#define OUTPORT_RESET 0x01 /* active low */
#define OUTPORT_A20   0x02

#define CMD_READ_CTR        0x20
#define CMD_WRITE_CTR       0x60
#define CMD_AUX_DISABLE     0xa7
#define CMD_AUX_ENABLE      0xa8
#define CMD_AUX_TEST        0xa9
#define CMD_SELF_TEST       0xaa
#define CMD_KBD_TEST        0xab
#define CMD_KBD_DISABLE     0xad
#define CMD_KBD_ENABLE      0xae
#define CMD_READ_OUTPORT    0xd0
#define CMD_WRITE_OUTPORT   0xd1
#define CMD_WRITE_KBD_OUT   0xd2
#define CMD_WRITE_AUX_OUT   0xd3
#define CMD_WRITE_AUX       0xd4
#define CMD_PULSE_FIRST     0xf0
#define CMD_PULSE_RESET_BIT 0x01 /* in a pulse command: 0 pulses the reset line */

#define SELF_TEST_OK     0x55
#define KBD_TEST_OK      0x00
#define AUX_TEST_NO_PORT 0x02

enum reply_kind { REPLY_NONE, REPLY_CONST, REPLY_CTR, REPLY_OUTPUT_PORT };

/* A controller command: its reply, the command-byte bits it sets and clears, whether a data
 * byte on port 0x60 follows. */
struct kbc_command {
	uint8_t cmd;
	uint8_t reply_kind;
	uint8_t reply;
	uint8_t ctr_set, ctr_clear;
	bool takes_data;
};

static const struct kbc_command kbc_commands[] = {
        {CMD_READ_CTR, REPLY_CTR, 0, 0, 0, false},
        {CMD_WRITE_CTR, REPLY_NONE, 0, 0, 0, true},
        {CMD_AUX_DISABLE, REPLY_NONE, 0, CTR_AUXDIS, 0, false},
        {CMD_AUX_ENABLE, REPLY_NONE, 0, 0, CTR_AUXDIS, false},
        {CMD_AUX_TEST, REPLY_CONST, AUX_TEST_NO_PORT, 0, 0, false},
        {CMD_SELF_TEST, REPLY_CONST, SELF_TEST_OK, 0, 0, false},
        {CMD_KBD_TEST, REPLY_CONST, KBD_TEST_OK, 0, 0, false},
        {CMD_KBD_DISABLE, REPLY_NONE, 0, CTR_KBDDIS, 0, false},
        {CMD_KBD_ENABLE, REPLY_NONE, 0, 0, CTR_KBDDIS, false},
        {CMD_READ_OUTPORT, REPLY_OUTPUT_PORT, 0, 0, 0, false},
        {CMD_WRITE_OUTPORT, REPLY_NONE, 0, 0, 0, true},
        {CMD_WRITE_KBD_OUT, REPLY_NONE, 0, 0, 0, true},
        {CMD_WRITE_AUX_OUT, REPLY_NONE, 0, 0, 0, true},
        {CMD_WRITE_AUX, REPLY_NONE, 0, 0, 0, true},
};

static void push_output(struct i8042 *kbc, uint8_t byte)
{
	if (kbc->out_count == ARRAY_SIZE(kbc->out)) {
		log_ratelimited(LOG_DEBUG, "i8042: output buffer full, byte dropped");
		return;
	}
	kbc->out[kbc->out_count++] = byte;
}

static uint8_t pop_output(struct i8042 *kbc)
{
	if (!kbc->out_count)
		return kbc->last_out;
	kbc->last_out = kbc->out[0];
	kbc->out_count--;
	memmove(kbc->out, kbc->out + 1, kbc->out_count);
	return kbc->last_out;
}

/* Answers a controller command: the reply replaces any unread output. */
static void reply(struct i8042 *kbc, uint8_t byte)
{
	kbc->out_count = 0;
	push_output(kbc, byte);
}

static const struct kbc_command *find_command(uint8_t cmd)
{
	for (size_t i = 0; i < ARRAY_SIZE(kbc_commands); i++) {
		if (kbc_commands[i].cmd == cmd)
			return &kbc_commands[i];
	}
	return NULL;
}

/* Runs a command written to port 0x64. Returns true when the guest asked for a reset. */
static bool run_command(struct i8042 *kbc, uint8_t cmd)
{
	const struct kbc_command *c = find_command(cmd);

	kbc->pending_cmd = 0;
	if (cmd >= CMD_PULSE_FIRST)
		return !(cmd & CMD_PULSE_RESET_BIT);
	if (!c) {
		log_ratelimited(LOG_DEBUG, "i8042: unsupported command %#x ignored", cmd);
		return false;
	}
	kbc->command_byte = (uint8_t)((kbc->command_byte | c->ctr_set) & ~c->ctr_clear);
	if (c->takes_data)
		kbc->pending_cmd = cmd;
	if (c->reply_kind == REPLY_CONST)
		reply(kbc, c->reply);
	else if (c->reply_kind == REPLY_CTR)
		reply(kbc, kbc->command_byte);
	else if (c->reply_kind == REPLY_OUTPUT_PORT)
		reply(kbc, kbc->output_port);
	return false;
}

/* Handles a byte written to port 0x60. Returns true when the guest asked for a reset. */
static bool write_data(struct i8042 *kbc, uint8_t val)
{
	uint8_t cmd = kbc->pending_cmd;

	kbc->pending_cmd = 0;
	switch (cmd) {
	case CMD_WRITE_CTR:
		kbc->command_byte = val;
		break;
	case CMD_WRITE_OUTPORT:
		kbc->output_port = val;
		return !(val & OUTPORT_RESET);
	case CMD_WRITE_KBD_OUT:
	case CMD_WRITE_AUX_OUT: /* no AUX port: echoed as keyboard data, see the top */
		reply(kbc, val);
		break;
	case CMD_WRITE_AUX:
		break; /* no mouse to receive it */
	default:
		log_ratelimited(LOG_DEBUG, "i8042: keyboard command %#x, no keyboard", val);
		break;
	}
	return false;
}

static void finish(struct i8042 *kbc, bool reset)
{
	pthread_mutex_unlock(&kbc->lock);
	if (reset && kbc->reset)
		kbc->reset(kbc->opaque);
}

static int data_read(void *opaque, uint64_t offset, void *data, unsigned size)
{
	struct i8042 *kbc = opaque;

	(void)offset;
	memset(data, 0, size);
	pthread_mutex_lock(&kbc->lock);
	*(uint8_t *)data = pop_output(kbc);
	pthread_mutex_unlock(&kbc->lock);
	return 0;
}

static int data_write(void *opaque, uint64_t offset, const void *data, unsigned size)
{
	struct i8042 *kbc = opaque;
	bool reset;

	(void)offset;
	(void)size;
	pthread_mutex_lock(&kbc->lock);
	reset = write_data(kbc, *(const uint8_t *)data);
	finish(kbc, reset);
	return 0;
}

static int status_read(void *opaque, uint64_t offset, void *data, unsigned size)
{
	struct i8042 *kbc = opaque;
	uint8_t status = STATUS_SYS | STATUS_KEYLOCK;

	(void)offset;
	memset(data, 0, size);
	pthread_mutex_lock(&kbc->lock);
	if (kbc->out_count)
		status |= STATUS_OBF;
	pthread_mutex_unlock(&kbc->lock);
	*(uint8_t *)data = status;
	return 0;
}

static int command_write(void *opaque, uint64_t offset, const void *data, unsigned size)
{
	struct i8042 *kbc = opaque;
	bool reset;

	(void)offset;
	(void)size;
	pthread_mutex_lock(&kbc->lock);
	reset = run_command(kbc, *(const uint8_t *)data);
	finish(kbc, reset);
	return 0;
}

const struct bus_ops i8042_data_ops = {.read = data_read, .write = data_write};
const struct bus_ops i8042_cmd_ops = {.read = status_read, .write = command_write};

void i8042_init(struct i8042 *kbc, void (*reset)(void *opaque), void *opaque)
{
	*kbc = (struct i8042){
	        .reset = reset,
	        .opaque = opaque,
	        .command_byte = CTR_XLATE | CTR_SYS | CTR_KBDINT,
	        .output_port = OUTPORT_RESET | OUTPORT_A20,
	};
	pthread_mutex_init(&kbc->lock, NULL);
}

void i8042_destroy(struct i8042 *kbc)
{
	pthread_mutex_destroy(&kbc->lock);
}

static int i8042_save(void *opaque, struct snap_writer *w, char *err, size_t errlen)
{
	struct i8042 *kbc = opaque;

	(void)err;
	(void)errlen;
	pthread_mutex_lock(&kbc->lock);
	snap_put_bytes(w,
	               (uint8_t[]){kbc->command_byte, kbc->pending_cmd, kbc->output_port,
	                           kbc->last_out, (uint8_t)kbc->out_count},
	               5);
	snap_put_bytes(w, kbc->out, sizeof(kbc->out));
	pthread_mutex_unlock(&kbc->lock);
	return 0;
}

static int i8042_load(void *opaque, struct snap_cursor *c, char *err, size_t errlen)
{
	struct i8042 *kbc = opaque;
	uint8_t regs[5], out[sizeof(kbc->out)];
	int ret;

	snap_get_bytes(c, regs, sizeof(regs));
	snap_get_bytes(c, out, sizeof(out));
	ret = snap_cursor_finish(c, err, errlen);
	if (!ret && regs[4] > sizeof(out)) {
		snprintf(err, errlen, "%u bytes in a %zu-byte output queue", regs[4], sizeof(out));
		ret = -EINVAL;
	}
	if (ret)
		return ret;
	pthread_mutex_lock(&kbc->lock);
	kbc->command_byte = regs[0];
	kbc->pending_cmd = regs[1];
	kbc->output_port = regs[2];
	kbc->last_out = regs[3];
	kbc->out_count = regs[4];
	memcpy(kbc->out, out, sizeof(out));
	pthread_mutex_unlock(&kbc->lock);
	return 0;
}

int i8042_snapshot_add(struct i8042 *kbc, struct snapshot_parts *parts)
{
	return snapshot_add(parts, "KBC ", 0, i8042_save, i8042_load, kbc);
}
