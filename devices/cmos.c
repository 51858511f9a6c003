/*
 * MC146818-style CMOS/RTC. Offset 0 is the index register (bit 7, the NMI mask, is dropped),
 * offset 1 the data register. The clock registers read the host's UTC time at the moment of
 * the read, in BCD and 24-hour mode; register A never shows an update in progress, so Linux's
 * mc146818_get_time() reads without waiting. Clock writes are ignored (the guest cannot set
 * the host's time), status registers A-D are fixed, and every other byte is NVRAM.
 *
 * Locking: cmos->lock guards the index and NVRAM. Access sizes: byte registers; a wider access
 * uses the low byte and the other bytes of a read are zero. Reading the index port gives
 * all-ones, as on real chipsets where it is write-only.
 */
#include "devices/cmos.h"

#include <stdbool.h>
#include <string.h>
#include <time.h>

#define CMOS_INDEX_MASK 0x7f /* bit 7 of the index port masks NMIs */

#define RTC_SECONDS  0x00
#define RTC_SEC_ALRM 0x01
#define RTC_MINUTES  0x02
#define RTC_MIN_ALRM 0x03
#define RTC_HOURS    0x04
#define RTC_HRS_ALRM 0x05
#define RTC_WEEKDAY  0x06
#define RTC_DAY      0x07
#define RTC_MONTH    0x08
#define RTC_YEAR     0x09
#define RTC_REG_A    0x0a
#define RTC_REG_B    0x0b
#define RTC_REG_C    0x0c
#define RTC_REG_D    0x0d
#define RTC_CENTURY  0x32

#define REG_A_VALUE 0x26 /* 32.768 kHz time base, 1024 Hz rate, UIP clear */
#define REG_B_VALUE 0x02 /* 24-hour, BCD, no interrupts */
#define REG_D_VALUE 0x80 /* VRT: RAM and time are valid */

static uint8_t to_bcd(int v)
{
	return (uint8_t)(((v / 10) % 10) << 4 | (v % 10));
}

/* Registers served by the clock rather than NVRAM: 0x00-0x0d but the alarms, and the century. */
static bool is_clock_reg(uint8_t index)
{
	if (index == RTC_CENTURY)
		return true;
	return index <= RTC_REG_D && index != RTC_SEC_ALRM && index != RTC_MIN_ALRM &&
	       index != RTC_HRS_ALRM;
}

/* The value of a clock register (is_clock_reg() true) at the time @tm (UTC). */
static uint8_t clock_reg(uint8_t index, const struct tm *tm)
{
	switch (index) {
	case RTC_SECONDS:
		return to_bcd(tm->tm_sec);
	case RTC_MINUTES:
		return to_bcd(tm->tm_min);
	case RTC_HOURS:
		return to_bcd(tm->tm_hour);
	case RTC_WEEKDAY:
		return to_bcd(tm->tm_wday + 1); /* 1 = Sunday */
	case RTC_DAY:
		return to_bcd(tm->tm_mday);
	case RTC_MONTH:
		return to_bcd(tm->tm_mon + 1);
	case RTC_YEAR:
		return to_bcd(tm->tm_year % 100);
	case RTC_CENTURY:
		return to_bcd((tm->tm_year + 1900) / 100);
	case RTC_REG_A:
		return REG_A_VALUE;
	case RTC_REG_B:
		return REG_B_VALUE;
	case RTC_REG_C:
		return 0; /* no interrupt flags */
	case RTC_REG_D:
		return REG_D_VALUE;
	default:
		return 0;
	}
}

static uint8_t read_reg(const struct cmos *cmos, uint8_t index)
{
	time_t now;
	struct tm tm;

	if (!is_clock_reg(index))
		return cmos->nvram[index];
	now = time(NULL);
	if (!gmtime_r(&now, &tm))
		memset(&tm, 0, sizeof(tm));
	return clock_reg(index, &tm);
}

static int cmos_read(void *opaque, uint64_t offset, void *data, unsigned size)
{
	struct cmos *cmos = opaque;

	if (offset != 1) {
		memset(data, 0xff, size);
		return 0;
	}
	memset(data, 0, size);
	pthread_mutex_lock(&cmos->lock);
	*(uint8_t *)data = read_reg(cmos, cmos->index);
	pthread_mutex_unlock(&cmos->lock);
	return 0;
}

static int cmos_write(void *opaque, uint64_t offset, const void *data, unsigned size)
{
	struct cmos *cmos = opaque;
	uint8_t val = *(const uint8_t *)data;

	(void)size;
	pthread_mutex_lock(&cmos->lock);
	if (offset == 0)
		cmos->index = val & CMOS_INDEX_MASK;
	else if (offset == 1 && !is_clock_reg(cmos->index))
		cmos->nvram[cmos->index] = val; /* clock and status registers ignore writes */
	pthread_mutex_unlock(&cmos->lock);
	return 0;
}

const struct bus_ops cmos_bus_ops = {.read = cmos_read, .write = cmos_write};

void cmos_init(struct cmos *cmos)
{
	*cmos = (struct cmos){0};
	pthread_mutex_init(&cmos->lock, NULL);
	/*
	 * glibc loads its time zone on the first gmtime_r, opening /etc/localtime: do that now,
	 * at set-up, not on a vCPU thread whose seccomp filter allows no open.
	 */
	tzset();
}

void cmos_destroy(struct cmos *cmos)
{
	pthread_mutex_destroy(&cmos->lock);
}

/* The index and the NVRAM; the clock registers read the host's time whenever read. */
static int cmos_save(void *opaque, struct snap_writer *w, char *err, size_t errlen)
{
	struct cmos *cmos = opaque;

	(void)err;
	(void)errlen;
	pthread_mutex_lock(&cmos->lock);
	snap_put_u8(w, cmos->index);
	snap_put_bytes(w, cmos->nvram, sizeof(cmos->nvram));
	pthread_mutex_unlock(&cmos->lock);
	return 0;
}

static int cmos_load(void *opaque, struct snap_cursor *c, char *err, size_t errlen)
{
	struct cmos *cmos = opaque;
	uint8_t index = snap_get_u8(c), nvram[sizeof(cmos->nvram)];
	int ret;

	snap_get_bytes(c, nvram, sizeof(nvram));
	ret = snap_cursor_finish(c, err, errlen);
	if (ret)
		return ret;
	pthread_mutex_lock(&cmos->lock);
	cmos->index = index & 0x7f;
	memcpy(cmos->nvram, nvram, sizeof(nvram));
	pthread_mutex_unlock(&cmos->lock);
	return 0;
}

int cmos_snapshot_add(struct cmos *cmos, struct snapshot_parts *parts)
{
	return snapshot_add(parts, "CMOS", 0, cmos_save, cmos_load, cmos);
}
