/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The few kernel types the vendored selftest programs use, instead of a full vmlinux.h
 * generated from one kernel's BTF: the UAPI of <linux/bpf.h>, the short integer names, and
 * the structures the programs read, marked preserve_access_index so that libbpf relocates
 * every field access against the BTF of the kernel the program is loaded into (CO-RE).
 * Structures the programs only pass around by pointer are declared, not defined.
 */
#ifndef __BPFCASE_VMLINUX_H__
#define __BPFCASE_VMLINUX_H__

#include <linux/types.h>
#include <linux/bpf.h>

typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef __s32 s32;
typedef __s64 s64;
typedef int pid_t;
typedef _Bool bool;
enum { false = 0, true = 1 };

struct task_struct {
	pid_t pid;
	pid_t tgid;
} __attribute__((preserve_access_index));

struct pt_regs;
struct bpf_local_storage_map;
struct bpf_local_storage_data;

#endif /* __BPFCASE_VMLINUX_H__ */
