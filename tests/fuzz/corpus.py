#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into tests/fuzz/corpus/<target>/.

Each seed is a small, meaningful input in the target's own format (see the comment at the top
of each fuzz_<target>.c): a driver bringing a device up and using it, a well-formed kernel
image, a typical command line. Run it after changing a target's input format; the output is
deterministic, so an unchanged format rewrites the same files.
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def le16(v): return struct.pack('<H', v & 0xffff)
def le32(v): return struct.pack('<I', v & 0xffffffff)
def le64(v): return struct.pack('<Q', v & 0xffffffffffffffff)


# ---- fz_run_bus operations (fuzz.h) ----

def rd(off, size=4, win=0):
    return bytes([(win & 7) << 2 | {1: 0, 2: 1, 4: 2, 8: 3}[size]]) + le32(off)


def wr(off, val, size=4, win=0):
    return bytes([0x20 | (win & 7) << 2 | {1: 0, 2: 1, 4: 2, 8: 3}[size]]) + le32(off) + le64(val)


def ram(addr, data):
    out = b''
    for at in range(0, len(data), 255):
        part = data[at:at + 255]
        out += bytes([0x80]) + le32(addr + at) + bytes([len(part)]) + part
    return out


def hook(*args):
    return bytes([0xc0]) + bytes(args)


def desc(addr, length, flags=0, nxt=0):
    return le64(addr) + le32(length) + le16(flags) + le16(nxt)


NEXT, WRITE, INDIRECT = 1, 2, 4


def avail(heads, idx=None, flags=0):
    return le16(flags) + le16(len(heads) if idx is None else idx) + b''.join(le16(h) for h in heads)


def chain_ring(base, size, chains):
    """A ring of @size entries at @base with @chains published: each a list of (addr, len, flags)
    buffers, written as direct descriptors from 0 up (NEXT added inside a chain)."""
    d, heads, i = b'', [], 0
    for c in chains:
        heads.append(i)
        for j, (a, l, f) in enumerate(c):
            last = j == len(c) - 1
            d += desc(a, l, f | (0 if last else NEXT), 0 if last else i + 1)
            i += 1
    return ram(base, d) + ram(base + 16 * size, avail(heads))


# ---- per target ----

def virtqueue():
    hdr = le16(8) + bytes([3]) + le32(0x1000) + le32(0x2000) + le32(0x3000)
    two = ram(0x1000, desc(0x4000, 64, NEXT, 1) + desc(0x5000, 128, WRITE)) + \
        ram(0x2000, avail([0]))
    ind = ram(0x1000, desc(0x6000, 32, INDIRECT)) + \
        ram(0x6000, desc(0x4000, 16, NEXT, 1) + desc(0x5000, 512, WRITE)) + ram(0x2000, avail([0]))
    loop = ram(0x1000, desc(0x4000, 8, NEXT, 1) + desc(0x4100, 8, NEXT, 0)) + ram(0x2000, avail([0]))
    gap = ram(0x1000, desc(0xfff0, 0x20, WRITE)) + ram(0x2000, avail([0]))
    many = ram(0x1000, b''.join(desc(0x4000 + 0x100 * i, 0x80, WRITE) for i in range(8))) + \
        ram(0x2000, avail(list(range(8))))
    return {
        'two_buffers': hdr + two + hook(1) + hook(3),
        'indirect': hdr + ind + hook(1),
        'loop': hdr + loop + hook(1),
        'across_gap': hdr + gap + hook(1),
        'batch_event_idx': hdr + many + ram(0x2000 + 4 + 16, le16(3)) + hook(2) + hook(3) +
        hook(2) + hook(3) + hook(4) + hook(0) + hook(1),
    }


def blk_request():
    def req(flags, cap, outs, ins):
        return bytes([flags]) + le64(cap) + bytes([len(outs), len(ins)]) + \
            b''.join(le16(len(b)) for b in outs + ins) + b''.join(outs + ins)

    def hdr(t, sector=0):
        return le32(t) + le32(0) + le64(sector)

    seg = le64(8) + le32(16) + le32(0)
    return {
        'in': req(6, 2048, [hdr(0, 1)], [bytes(512), bytes(1)]),
        'out': req(6, 2048, [hdr(1, 2), bytes(range(256)) * 4], [bytes(1)]),
        'flush': req(6, 2048, [hdr(4)], [bytes(1)]),
        'get_id': req(6, 2048, [hdr(8)], [bytes(20), bytes(1)]),
        'discard': req(6, 2048, [hdr(11), seg + le64(100) + le32(8) + le32(0)], [bytes(1)]),
        'write_zeroes': req(6, 2048, [hdr(13), le64(8) + le32(16) + le32(1)], [bytes(1)]),
        'out_read_only': req(1, 2048, [hdr(1), bytes(512)], [bytes(1)]),
    }


def uart():
    # THR 0, IER 1, IIR/FCR 2, LCR 3, MCR 4, LSR 5, MSR 6, SCR 7; port I/O is 1 byte.
    probe = wr(3, 0x80, 1) + wr(0, 0x01, 1) + wr(1, 0, 1) + wr(3, 0x03, 1) + wr(2, 0xc7, 1) + \
        wr(4, 0x0b, 1) + wr(1, 0x0f, 1) + rd(2, 1) + rd(5, 1) + rd(6, 1) + wr(7, 0x5a, 1) + rd(7, 1)
    tx = probe + b''.join(wr(0, c, 1) for c in b'hello\n') + rd(2, 1) + rd(5, 1)
    slow = probe + hook(1, 2) + b''.join(wr(0, c, 1) for c in b'0123456789abcdefXYZ') + \
        rd(5, 1) + hook(1, 64) + hook(2) + rd(5, 1)
    rx = probe + hook(0, 5) + b'input' + rd(2, 1) + rd(5, 1) + b''.join(rd(0, 1) for _ in range(6))
    loop = probe + wr(4, 0x1f, 1) + wr(0, 0x41, 1) + rd(5, 1) + rd(0, 1) + rd(6, 1)
    return {'probe': probe, 'transmit': tx, 'slow_host': slow, 'receive': rx, 'loopback': loop}


def i8042():
    # Window base 0x60: data at offset 0, command/status at offset 4.
    cmd = lambda c: wr(4, c, 1)
    return {
        'probe': cmd(0xaa) + rd(0, 1) + cmd(0x20) + rd(0, 1) + cmd(0x60) + wr(0, 0x47, 1) + rd(4, 1),
        'aux': cmd(0xa8) + cmd(0xa9) + rd(0, 1) + cmd(0xd4) + wr(0, 0xff, 1) + rd(4, 1) + rd(0, 1),
        'reset': cmd(0xd1) + wr(0, 0xfe, 1) + cmd(0xfe),
        'keyboard': wr(0, 0xff, 1) + rd(0, 1) + rd(0, 1) + wr(0, 0xf2, 1) + rd(0, 1) + cmd(0xad) +
        cmd(0xae) + rd(4, 1),
    }


def cmos():
    regs = b''.join(wr(0, r, 1) + rd(1, 1) for r in list(range(0x0e)) + [0x0f, 0x32, 0x34, 0x35, 0x7f])
    return {
        'read_all': regs,
        'set_mode': wr(0, 0x0b, 1) + wr(1, 0x06, 1) + wr(0, 0x0b, 1) + rd(1, 1) + wr(0, 0x0a, 1) +
        rd(1, 1) + wr(0, 0x0c, 1) + rd(1, 1),
        'nmi_and_high': wr(0, 0x80, 1) + rd(1, 1) + wr(0, 0xff, 1) + wr(1, 0x12, 1) + rd(1, 1),
    }


def acpi_pm():
    # Sleep control 0, sleep status 1, reset 2; SLP_EN bit 5, SLP_TYP bits 2-4.
    return {
        'poweroff': rd(1, 1) + wr(0, 5 << 2 | 0x20, 1),
        'sleep_other': wr(0, 3 << 2 | 0x20, 1) + wr(1, 0x80, 1) + rd(1, 1),
        'reset': wr(2, 0x01, 1) + rd(2, 1) + wr(2, 0x06, 1),
        'wide': wr(0, 0xffffffff, 4) + rd(0, 2) + rd(2, 4),
    }


def arm64_image():
    body = bytearray((i * 7 + 3) & 0xff for i in range(8192))
    body[0:4] = le32(0x91005a4d)
    body[8:16] = le64(0)
    body[16:24] = le64(3 * 1024 * 1024 + 0x1234)
    body[24:32] = le64(0xa)
    body[32:56] = bytes(24)
    body[56:60] = le32(0x644d5241)
    small = bytearray(body)
    small[16:24] = le64(len(body))
    return {
        'image': le32(0) + bytes(body),
        'image_initrd': le32(4096) + bytes(body),
        'image_exact_size': le32(100) + bytes(small),
    }


def bzimage_kernel(version_string=b''):
    sects = 4
    code = 4096
    img = bytearray((sects + 1) * 512 + code)
    h = 0x1f1
    img[h] = sects
    img[0x1f4:0x1f8] = le32(code // 16)
    img[0x1fe:0x200] = le16(0xaa55)
    img[0x200:0x202] = le16(0x6aeb)
    img[0x202:0x206] = b'HdrS'
    img[0x206:0x208] = le16(0x020f)
    img[0x211] = 0x01 | 0x20
    img[0x22c:0x230] = le32(0x7fffffff)
    img[0x230:0x234] = le32(2 * 1024 * 1024)
    img[0x234] = 1
    img[0x236:0x238] = le16(0x1 | 0x2)
    img[0x238:0x23c] = le32(255)
    img[0x258:0x260] = le64(16 * 1024 * 1024)
    img[0x260:0x264] = le32(8 * 1024 * 1024)
    if version_string:
        at = 0x300
        img[0x20e:0x210] = le16(at - 0x200)
        img[at:at + len(version_string) + 1] = version_string + b'\0'
    for i in range((sects + 1) * 512, len(img)):
        img[i] = (i * 7 + 3) & 0xff
    return bytes(img)


def elf_kernel(pvh=True):
    ehsize, phsize = 64, 56
    img = bytearray(0x700)
    img[0:16] = b'\x7fELF' + bytes([2, 1, 1]) + bytes(9)
    img[16:64] = struct.pack('<HHIQQQIHHHHHH', 2, 62, 1, 0x200010, ehsize, 0, 0, ehsize, phsize,
                             3, 0, 0, 0)

    def note(name, ntype, desc):
        n = name + b'\0'
        out = struct.pack('<III', len(n), len(desc), ntype) + n
        out += bytes(-len(out) % 4) + desc
        return out + bytes(-len(out) % 4)

    notes = note(b'Linux', 1, le32(1) + le32(2) + le32(3))
    if pvh:
        notes += note(b'Xen', 18, le32(0x200040))
    img[0x300:0x300 + len(notes)] = notes

    def phdr(i, ptype, off, paddr, filesz, memsz, align):
        at = ehsize + i * phsize
        img[at:at + phsize] = struct.pack('<IIQQQQQQ', ptype, 0, off, paddr, paddr, filesz, memsz,
                                          align)

    phdr(0, 1, 0x400, 0x200000, 0x200, 0x1000, 4096)
    phdr(1, 1, 0x600, 0x300000, 0x100, 0x100, 4096)
    phdr(2, 4, 0x300, 0, len(notes), 0, 4)
    for i in range(0x400, 0x700):
        img[i] = (i * 7 + 3) & 0xff
    return bytes(img)


def x86_prefix(flags, cmdline_len, initrd):
    return bytes([flags]) + le16(cmdline_len) + le32(initrd)


def bzimage():
    k = bzimage_kernel()
    return {
        'bzimage': x86_prefix(0, 20, 0) + k,
        'bzimage_initrd_high': x86_prefix(1, 300, 4096) + k,
        'bzimage_no_cmdline': x86_prefix(2, 0, 100) + k,
    }


def elf():
    return {
        'pvh': x86_prefix(0, 20, 0) + elf_kernel(True),
        'elf64': x86_prefix(0, 20, 4096) + elf_kernel(False),
        'pvh_high': x86_prefix(1, 100, 512) + elf_kernel(True),
    }


def virtio_mmio():
    # virtio-mmio registers: status 0x70, features 0x10/0x14/0x20/0x24, queue 0x30..0xa4.
    def up(features):
        s = wr(0x70, 0) + wr(0x70, 1) + wr(0x70, 3) + rd(0x0) + rd(0x4) + rd(0x8) + \
            wr(0x14, 0) + rd(0x10) + wr(0x14, 1) + rd(0x10) + \
            wr(0x24, 0) + wr(0x20, features & 0xffffffff) + wr(0x24, 1) + wr(0x20, features >> 32) + \
            wr(0x70, 0xb) + rd(0x70)
        for q, base in ((0, 0x1000), (1, 0x4000)):
            s += wr(0x30, q) + rd(0x34) + wr(0x38, 8) + wr(0x80, base) + wr(0x84, 0) + \
                wr(0x90, base + 0x1000) + wr(0x94, 0) + wr(0xa0, base + 0x2000) + wr(0xa4, 0) + \
                wr(0x44, 1)
        return s + wr(0x70, 0xf) + rd(0x70)

    feats = 1 << 32 | 1 << 29 | 1 << 28
    chain = ram(0x1000, desc(0x8000, 16, NEXT, 1) + desc(0x9000, 64, WRITE)) + ram(0x2000, avail([0]))
    return {
        'bring_up': up(1 << 32),
        'notify': up(feats) + chain + wr(0x50, 0) + hook() + rd(0x60) + wr(0x64, 1),
        'config': up(1 << 32) + rd(0x100) + wr(0x100, 0x11223344) + rd(0x108, 4) + wr(0x104, 7, 8) +
        rd(0xfc),
        'bad_ring_reset': up(1 << 32) + wr(0x30, 0) + wr(0x80, 0xffff0001) + wr(0x70, 0) + rd(0x70),
    }


def virtio_pci():
    # Windows: 0 the BAR (common config at 0, ISR 0x1000, device config 0x2000, doorbells 0x3000,
    # MSI-X table 0x4000, PBA 0x5000), 1 the device's ECAM page, 2 ports 0xcf8-0xcff.
    def cm(off, val, size): return wr(off, val, size, 0)

    def up(features):
        s = wr(0x04, 0x6, 2, 1) + rd(0x00, 4, 1) + rd(0x34, 1, 1) + \
            cm(0x14, 0, 1) + cm(0x14, 1, 1) + cm(0x14, 3, 1) + cm(0x00, 0, 4) + rd(0x04) + \
            cm(0x00, 1, 4) + rd(0x04) + cm(0x08, 0, 4) + cm(0x0c, features & 0xffffffff, 4) + \
            cm(0x08, 1, 4) + cm(0x0c, features >> 32, 4) + cm(0x14, 0xb, 1) + rd(0x14, 1)
        for q, base in ((0, 0x1000), (1, 0x4000)):
            s += cm(0x16, q, 2) + rd(0x18, 2) + cm(0x18, 8, 2) + cm(0x1a, q + 1, 2) + \
                cm(0x20, base, 8) + cm(0x28, base + 0x1000, 8) + cm(0x30, base + 0x2000, 8) + \
                cm(0x1c, 1, 2) + rd(0x1e, 2)
        return s + cm(0x10, 0, 2) + cm(0x14, 0xf, 1) + rd(0x14, 1)

    feats = 1 << 32 | 1 << 29 | 1 << 28
    chain = ram(0x1000, desc(0x8000, 16, NEXT, 1) + desc(0x9000, 64, WRITE)) + ram(0x2000, avail([0]))
    msix_on = rd(0x40, 1, 1) + wr(0x42, 0x8000, 2, 1)  # MSI-X capability offset varies: a guess
    return {
        'bring_up': up(1 << 32),
        'notify_intx': up(feats) + chain + wr(0x3000, 0, 2) + hook() + rd(0x1000, 1),
        'notify_msix': up(feats) + msix_on + wr(0x4010, 0xfee00000, 4) + wr(0x4018, 0x41, 4) +
        wr(0x401c, 0, 4) + chain + wr(0x3000, 0, 4) + hook() + rd(0x5000, 8),
        'cf8_window': wr(0, 0x80000800 | 0x10, 4, 2) + rd(4, 4, 2) + wr(0, 0x80000800, 4, 2) +
        rd(4, 2, 2) + rd(6, 2, 2),
        'device_config': up(1 << 32) + rd(0x2000, 4) + wr(0x2000, 0xdeadbeef, 4) + rd(0x2008, 4),
    }


def pci():
    # Windows: 0 ports 0xcf8-0xcff, 1 the whole ECAM bus, 2 the device's ECAM page, 3 BAR 0, 4 BAR 2.
    cf8 = lambda slot, reg: wr(0, 0x80000000 | slot << 11 | reg, 4, 0)
    scan = b''.join(cf8(s, 0) + rd(4, 4, 0) for s in range(4))
    sizing = wr(0x10, 0xffffffff, 4, 2) + rd(0x10, 4, 2) + wr(0x18, 0xffffffff, 4, 2) + \
        wr(0x1c, 0xffffffff, 4, 2) + rd(0x18, 4, 2) + rd(0x1c, 4, 2)
    caps = rd(0x06, 2, 2) + rd(0x34, 1, 2) + rd(0x40, 4, 2) + rd(0x48, 4, 2) + wr(0x44, 0x3, 2, 2)
    return {
        'scan_cf8': scan,
        'scan_ecam': b''.join(rd(s << 15, 4, 1) for s in range(8)) + rd(0x8000 + 0x100, 4, 1),
        'bar_sizing_and_move': sizing + wr(0x10, 0xc0100000, 4, 2) + wr(0x04, 0x2, 2, 2) +
        rd(0x10, 4, 3) + wr(0x20, 0x1234, 4, 3),
        'capabilities': caps + wr(0x04, 0x6, 2, 2) + rd(0x2000, 8, 4) + wr(0x2000, 0xfee00000, 4, 4),
        'cf8_bytes': cf8(1, 0x3c) + wr(4, 0x0a, 1, 0) + rd(5, 1, 0) + rd(6, 2, 0) + wr(0, 0x12345678, 4, 0),
    }


def msix():
    # Windows: 0 the table (16 bytes a vector) and PBA (at 0x1000), 1 the device's config space.
    enable = rd(0x34, 1, 1) + rd(0x48, 4, 1) + wr(0x04, 0x6, 2, 1) + wr(0x4a, 0x8000, 2, 1)
    vec = lambda v, data: wr(16 * v, 0xfee00000, 4) + wr(16 * v + 4, 0, 4) + wr(16 * v + 8, data, 4) + \
        wr(16 * v + 12, 0, 4)
    return {
        'program_and_fire': enable + vec(0, 0x41) + vec(1, 0x42) + hook(0) + hook(1) + rd(0x1000, 8),
        'masked_pending': enable + vec(2, 0x43) + wr(16 * 2 + 12, 1, 4) + hook(2) + rd(0x1000, 8) +
        wr(16 * 2 + 12, 0, 4) + rd(0x1000, 8),
        'function_mask': enable + wr(0x4a, 0xc000, 2, 1) + vec(3, 0x44) + hook(3) + wr(0x4a, 0x8000, 2, 1),
        'odd_accesses': rd(1, 1) + rd(2, 2) + wr(6, 5, 2) + rd(16 * 63, 8) + wr(16 * 64, 1, 8) + hook(200),
    }


def config():
    args = lambda *a: b'\0'.join(x.encode() for x in a)
    return {
        'basic': args('--kernel', '/boot/vmlinuz', '--initrd', '/boot/initrd.img', '--mem', '512M',
                      '--cpus', '2', '--cmdline', 'console=ttyS0 quiet'),
        'devices': args('-k', 'k', '--disk', 'a.img,ro,serial=ABCDEF,cache=none', '--disk', 'b.img',
                        '--net', 'tap0,mac=02:00:00:00:00:01', '--transport', 'mmio',
                        '--console', 'virtio', '--no-rng'),
        'run': args('--kernel', 'k', '--run', '/bin/true', '--share', '/tmp:tmp,ro', '--modules',
                    '/lib/modules/6.1.0', '--timeout', '30', '--log-level', 'debug'),
        'errors': args('--kernel', 'k', '--mem', '12Q', '--cpus', '0', '--disk',
                       'x,serial=ABCDEF,serial=XY', 'extra'),
        'help': args('--help'),
        'net_user_vsock': args('-k', 'k', '--net', 'user,hostfwd=tcp::2222-:22,hostfwd=udp:127.0.0.1:'
                               '5353-10.0.2.20:53,mac=52:54:00:12:34:57', '--net', 'tap=tap0',
                               '--vsock', '/tmp/v.sock,cid=42'),
    }


def kmod():
    release_bz = b'\x00' + bzimage_kernel(b'6.1.0-28-cloud-amd64 (debian-kernel@lists.debian.org) #1 SMP')
    release_image = b'\x00' + bytes(64) + b'Linux version 6.1.0-28-arm64 (gcc) #1 SMP\0' + bytes(16)

    def resolve(dep, builtin, names):
        b = 0xffff if builtin is None else len(builtin)
        return b'\x01' + le16(len(dep)) + le16(b) + dep + (builtin or b'') + names

    dep = (b'kernel/fs/fuse/virtiofs.ko: kernel/fs/fuse/fuse.ko\n'
           b'kernel/fs/fuse/fuse.ko:\n'
           b'kernel/drivers/net/virtio_net.ko.xz: kernel/drivers/net/net_failover.ko.xz '
           b'kernel/net/core/failover.ko.xz\n'
           b'kernel/drivers/net/net_failover.ko.xz: kernel/net/core/failover.ko.xz\n'
           b'kernel/net/core/failover.ko.xz:\n')
    return {
        'release_bzimage': release_bz,
        'release_image': release_image,
        'resolve': resolve(dep, b'kernel/drivers/virtio/virtio.ko\n', b'virtiofs\nvirtio\nvirtio-net'),
        'resolve_no_builtin': resolve(dep, None, b'fuse.ko\nnet_failover'),
        'resolve_bad_line': resolve(b'kernel/a.ko: ../../etc/passwd\nnocolon\n', b'', b'a'),
    }


def init_config():
    return {
        'modules': b'\x00/lib/modules/6.1/kernel/fs/fuse/fuse.ko\n/lib/modules/6.1/virtiofs.ko.xz\n',
        'mounts': b'\x01vmm-root\0/\0ro\0share0\0/tmp/x\0rw\0share1\0/home/u\0ro\0',
        'cwd': b'\x02/home/user/src',
        'cmd': b'\x03make -j2 test',
        'term': b'\x04xterm-256color',
        'records': (b'\x05mounts 14\nvmm-root\0/\0ro\0cwd 4\n/srvcmd 6\nexit 3'
                    b'term 5\nxtermend 0\n'),
    }


def vhost_user():
    REPLY = 0x5

    def reply(req, payload):
        return le32(req) + le32(REPLY) + le32(len(payload)) + payload

    ack = lambda req, v=0: reply(req, le64(v))
    plain = reply(1, le64(1 << 32))  # GET_FEATURES without protocol features
    proto = reply(1, le64(1 << 32 | 1 << 30)) + reply(15, le64(0x9)) + ack(16) + ack(3)
    acks = ack(2) + ack(5) + b''.join(ack(r) for _ in range(2) for r in (8, 9, 10, 13, 12, 18))
    return {
        'plain_session': plain + reply(11, le32(0) + le32(7)),
        'protocol_session': proto + reply(17, le64(2)) + acks + reply(11, le32(0) + le32(3)),
        'refused': reply(1, le64(1 << 32 | 1 << 30)) + reply(15, le64(0x8)) + ack(16, 1),
        'wrong_reply': reply(2, le64(0)) + reply(1, le32(0)),
    }


def net_seeds():
    # One pair: RX ring at 0x1000, TX at 0x4000, ctrl at 0x7000 (size 8 each: log2 3); data from
    # 0x10000. Two pairs (MQ): RX0, TX0, RX1 (0x7000), TX1 (0xa000), ctrl at 0xd000.
    feats = 1 << 32 | 1 << 15 | 1 << 17 | 1 << 18 | 1 << 0 | 1 << 1 | 1 << 11 | 1 << 7
    head = le64(feats) + bytes([0, 3, 3, 3])
    mq_head = le64(feats | 1 << 22) + bytes([1, 3, 3, 3, 3, 3])
    hdr = bytes(12)
    frame = bytes(range(60))
    tx = chain_ring(0x4000, 8, [[(0x10000, 12, 0), (0x10100, 60, 0)]]) + ram(0x10000, hdr) + \
        ram(0x10100, frame)
    rx = chain_ring(0x1000, 8, [[(0x20000, 1526, WRITE)], [(0x21000, 1526, WRITE)]])
    ctrl = chain_ring(0x7000, 8, [[(0x30000, 2, 0), (0x30010, 1, 0), (0x30020, 1, WRITE)]]) + \
        ram(0x30000, bytes([0, 0])) + ram(0x30010, bytes([1]))
    pkt = hdr + frame
    small_rx = chain_ring(0x1000, 8, [[(0x20000 + 0x1000 * i, 40, WRITE)] for i in range(3)])
    pairs_set = [[(0x30000, 4, 0), (0x30020, 1, WRITE)], [(0x30040, 4, 0), (0x30060, 1, WRITE)]]
    ctrl1 = chain_ring(0xd000, 8, pairs_set[:1]) + ram(0x30000, bytes([4, 0, 2, 0]))
    ctrl2 = chain_ring(0xd000, 8, pairs_set) + ram(0x30040, bytes([4, 0, 1, 0]))
    return {
        'transmit': head + tx + hook(0, 1),
        'receive': head + rx + hook(0, 0) + hook(1) + le16(len(pkt)) + pkt + hook(2, 1),
        'receive_merged': head + small_rx + hook(1) + le16(len(pkt)) + pkt + hook(2, 1) + hook(0, 0),
        'control': head + ctrl + hook(0, 2),
        'backend_full': head + tx + hook(3, 2) + hook(0, 1) + hook(2, 2) + hook(2, 2),
        'reset': head + tx + hook(5) + hook(0, 1) + hook(4) + hook(0, 1),
        # VQ_PAIRS_SET 2 on the control queue (4), traffic on pair 1, then VQ_PAIRS_SET 1.
        'mq_pairs': mq_head + ctrl1 + hook(0, 4) +
        chain_ring(0x7000, 8, [[(0x20000, 1526, WRITE)]]) +
        chain_ring(0xa000, 8, [[(0x10000, 12, 0), (0x10100, 60, 0)]]) + ram(0x10000, hdr) +
        ram(0x10100, frame) + hook(1) + le16(len(pkt)) + pkt + hook(2, 1 | 1 << 2) +
        hook(0, 3) + ctrl2 + hook(0, 4) + hook(2, 1 | 1 << 2) + hook(0, 3),
    }


def console_control():
    # Queue q's ring at 0x800 * q, size 8 (log2 3); control rx queue 2, tx queue 3; data from 0x8000.
    feats = 1 << 32 | 1 << 1
    head = le64(feats) + bytes([3] * 8)

    def ring(q, chains):
        return chain_ring(0x800 * q, 8, chains)

    ctrl = lambda port, event, value: le32(port) + le16(event) + le16(value)
    rx_bufs = ring(2, [[(0x8000 + 0x100 * i, 0x100, WRITE)] for i in range(6)])
    ready = ring(3, [[(0x9000, 8, 0)]]) + ram(0x9000, ctrl(0, 0, 1))
    port_ready = ring(3, [[(0x9000, 8, 0)], [(0x9010, 8, 0)], [(0x9020, 8, 0)], [(0x9030, 8, 0)]]) + \
        ram(0x9000, ctrl(0, 0, 1) + bytes(8) + ctrl(0, 3, 1) + bytes(8) + ctrl(1, 3, 1) + bytes(8) +
            ctrl(1, 6, 1))
    data_rx = ring(4, [[(0xa000, 64, WRITE)]])
    data_tx = ring(5, [[(0xb000, 5, 0)]]) + ram(0xb000, b'hello')
    return {
        'device_ready': head + rx_bufs + ready + hook(0, 3) + hook(0, 2),
        'ports_ready_open': head + rx_bufs + port_ready + hook(0, 3) + hook(0, 2),
        'port_data': head + rx_bufs + port_ready + hook(0, 3) + data_rx + hook(0, 4) +
        hook(1, 1, 3) + b'abc' + data_tx + hook(0, 5),
        'slow_backend': head + rx_bufs + port_ready + hook(0, 3) + hook(4, 1) + data_tx + hook(0, 5) +
        hook(2, 1) + hook(4, 255) + hook(2, 1) + hook(3, 1, 0) + hook(5),
        'bad_control': head + rx_bufs + ring(3, [[(0x9000, 3, 0)], [(0x9010, 8, WRITE)]]) +
        ram(0x9000, ctrl(99, 42, 7)) + hook(0, 3) + hook(6),
    }


def initramfs():
    e = lambda kind, mode, name: bytes([kind]) + le16(mode) + name
    return {
        'run_layout': b'\0'.join([e(0, 0o755, b'vmm'), e(1, 0o755, b'init'),
                                  e(2, 0o644, b'vmm/modules/kernel/fs/fuse/fuse.ko'),
                                  e(3, 0o600, b'dev/console'), e(1, 0o644, b'vmm/cmd')]),
        'bad_names': b'\0'.join([e(1, 0o644, b'/abs'), e(1, 0o644, b'a/../b'), e(1, 0o644, b'a//b')]),
        'file_as_parent': b'\0'.join([e(1, 0o644, b'a'), e(2, 0o644, b'a/b/c')]),
    }


def coalesced_io():
    # Ring indices (first, last), then entries: address le64, length le32, pio le32, data[8].
    def ent(addr, length, value, pio=1):
        return struct.pack('<QII', addr, length, pio) + value.to_bytes(8, 'little')
    cf8 = [ent(0xcf8, 4, 0x80000000 | reg) for reg in (0, 4, 8, 0x10)]
    cmos = [ent(0x70, 1, reg) for reg in (0x0a, 0x0b, 0x32)]
    return {
        'pci_addresses': struct.pack('<II', 0, 4) + b''.join(cf8),
        'wrapped': struct.pack('<II', 168, 2) + b''.join(cf8 * 43)[:170 * 24],
        'cmos_and_odd': struct.pack('<II', 0, 5) + b''.join(cmos) + ent(0xcfb, 1, 1) +
        ent(0x70, 9, 0),
        'bad_indices': struct.pack('<II', 500, 3) + b''.join(cf8),
    }


TARGETS = {
    'virtqueue': virtqueue, 'blk_request': blk_request, 'uart': uart, 'i8042': i8042,
    'cmos': cmos, 'acpi_pm': acpi_pm, 'arm64_image': arm64_image, 'bzimage': bzimage, 'elf': elf,
    'virtio_mmio': virtio_mmio, 'virtio_pci': virtio_pci, 'pci': pci, 'msix': msix,
    'config': config, 'kmod': kmod, 'init_config': init_config, 'vhost_user': vhost_user,
    'net': net_seeds, 'console_control': console_control, 'initramfs': initramfs,
    'coalesced_io': coalesced_io,
}


def main():
    root = os.path.join(HERE, 'corpus')
    for target, make in TARGETS.items():
        d = os.path.join(root, target)
        os.makedirs(d, exist_ok=True)
        for name, data in make().items():
            with open(os.path.join(d, name), 'wb') as f:
                f.write(data)
    return 0


if __name__ == '__main__':
    sys.exit(main())
