// SPDX-License-Identifier: GPL-2.0
/*
 * The C twin of the programs bpfcase compiles itself for one-operation `prog` steps: one
 * bpf_task_storage_get, bpf_task_storage_delete or bpf_get_current_task_btf call, configured
 * through the read-only `cfg` before load (so the verifier sees constants, as it does in the
 * compiled programs), writing the compiler's result layout into the `results` map:
 *
 *   [0] finished   [8] state (1 = done)   [16] ret / non-NULL flag   [24] first 8 value bytes
 *   then the run-time parameters: flags for "runtime:N" at the offset the compiler gives them.
 *
 * The runner reuses its own `st` and `results` maps for this object, so both programs run
 * against the same kernel objects and are observed by the same code. A differential test
 * checks that both give identical observations.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct task_struct;

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);
} st SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__uint(value_size, 40);
} results SEC(".maps");

enum op { OP_GET = 0, OP_DELETE = 1, OP_CURRENT_TASK = 2 };

/* Layout shared with the runner (exec/cprog.rs): 32 bytes. */
struct config {
	__u32 op;
	__u32 task_null;	/* 0: bpf_get_current_task_btf(), 1: NULL */
	__u32 has_value;	/* 0: NULL, 1: a stack buffer holding `value` */
	__u32 runtime_flags;	/* 0: `flags`; 1: the u64 after the get's slot (offset 32) */
	__u64 value;
	__u64 flags;
};

const volatile struct config cfg = {};

SEC("syscall")
int run(void *ctx)
{
	__u32 zero = 0;
	__u64 *r = bpf_map_lookup_elem(&results, &zero);
	struct task_struct *task = 0;

	if (!r)
		return 0;
	if (!cfg.task_null || cfg.op == OP_CURRENT_TASK)
		task = bpf_get_current_task_btf();

	if (cfg.op == OP_CURRENT_TASK) {
		r[1] = 1;
		if (task)
			r[2] = 1;
	} else if (cfg.op == OP_GET) {
		__u64 buf = cfg.value;
		__u64 flags = cfg.flags;
		__u64 *v;

		if (cfg.runtime_flags)
			flags = r[4];
		v = bpf_task_storage_get(&st, task, cfg.has_value ? &buf : 0, flags);
		r[1] = 1;
		if (v) {
			r[2] = 1;
			r[3] = *v;
		}
	} else {
		r[2] = bpf_task_storage_delete(&st, task);
		r[1] = 1;
	}
	r[0] = 1;
	return 0;
}
