// SPDX-License-Identifier: GPL-2.0
/*
 * One bpf_task_storage_get on the current task, its flags and the initial value given
 * through `const volatile` globals that a case sets before load ("globals"), so that the
 * verifier sees them as constants; what the call got is left in writable globals that the
 * case observes ("observe"): `found` (1 for a pointer) and `seen` (the value it points to).
 * Returns 0 when the call gave a pointer, 1 for NULL.
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

const volatile __u64 flags = 0;
const volatile __u64 value = 0;

int found = 0;
__u64 seen = 0;

SEC("syscall")
int get(void *ctx)
{
	__u64 v = value;
	__u64 *p = bpf_task_storage_get(&st, bpf_get_current_task_btf(), &v, flags);

	if (!p)
		return 1;
	found = 1;
	seen = *p;
	return 0;
}
