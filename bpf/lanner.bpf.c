// SPDX-License-Identifier: Apache-2.0
//
// Lanner's syscall probes, compiled by bcc.
//
// Tracepoint arguments and BPF helpers are read directly. Kernel structs are never read through the installed
// headers (older than the running kernel, so their offsets are wrong); the few struct reads at exec use offsets
// taken from the running kernel's BTF and passed in as -DK_* constants (see fill_task). Every syscall
// tracepoint stores its arguments as 8-byte slots starting at offset 16, which SC_ARG() reads directly.
//
// Syscalls are paired enter/exit through a per-thread map so each call produces one record carrying both the
// arguments and the result. User strings are read at exit, when the kernel has just faulted the pages in.
//
// Build-time configuration (bcc cflags, -DNAME=value):
//   LANNER_RB_PAGES     ring buffer size in pages (power of two)
//   LANNER_FAM_OPEN     1 to trace open/openat/openat2/creat/open_by_handle_at and dup/dup2/dup3
//   LANNER_FAM_NET      1 to trace socket/connect/accept/accept4/listen, sendto/sendmsg to an address
//   LANNER_FAM_FILEOP   1 to trace unlink*/rename*/mkdir*/rmdir/chdir/fchdir/chmod*/symlink*/link*
//   LANNER_FAM_PRIV     1 to trace setuid/setgid families, ptrace, unshare, setns, bpf, prctl
//   LANNER_SELF_TGID    the collector's own pid, excluded (with its children) from the first instant
//   LANNER_DROP_FAILED_OPEN  1 to skip opens that failed (most rules need a file that was opened)
//   LANNER_CAPTURE_ENV  1 to copy the environment of execve (proc.env), 0 to leave it out
//   LANNER_BTF          1 when the K_* struct offsets below were taken from the running kernel's BTF
//                       (collector/kernel_offsets.py); exec records then carry struct lanner_task
//   LANNER_REGS_ARGS    1 (x86_64) when exit probes can read a syscall's arguments from the task's saved user
//                       registers: the open family then has no enter probes
//   LANNER_MODULE_TPS   1 when the kernel has init_module/finit_module tracepoints (module support built in)
//   LANNER_RAW_ENTER    1 (x86_64 with LANNER_REGS_ARGS) when every enter-side probe runs on one BPF raw tracepoint
//                       on sys_enter, dispatched by syscall number (NR_<name>, from collector/rawenter.py), instead
//                       of the syscalls:sys_enter_* perf tracepoints (see the end of this file)
// Process lifecycle (exec, fork, exit) is always traced: the process table depends on it.

#include <uapi/linux/ptrace.h>
#include "lanner_events.h"

#ifndef LANNER_RB_PAGES
#define LANNER_RB_PAGES 256
#endif
#ifndef LANNER_SELF_TGID
#define LANNER_SELF_TGID 0
#endif
#ifndef LANNER_FAM_OPEN
#define LANNER_FAM_OPEN 1
#endif
#ifndef LANNER_CAPTURE_ENV
#define LANNER_CAPTURE_ENV 1
#endif
#ifndef LANNER_DROP_FAILED_OPEN
#define LANNER_DROP_FAILED_OPEN 0
#endif
#ifndef LANNER_FAM_NET
#define LANNER_FAM_NET 1
#endif
#ifndef LANNER_FAM_FILEOP
#define LANNER_FAM_FILEOP 1
#endif
#ifndef LANNER_FAM_PRIV
#define LANNER_FAM_PRIV 1
#endif
#ifndef LANNER_BTF
#define LANNER_BTF 0
#endif
#ifndef LANNER_REGS_ARGS
#define LANNER_REGS_ARGS 0
#endif
#ifndef LANNER_MODULE_TPS
#define LANNER_MODULE_TPS 0
#endif
#ifndef LANNER_RAW_ENTER
#define LANNER_RAW_ENTER 0
#endif

// An enter-side probe: a syscalls:sys_enter_* tracepoint, or with LANNER_RAW_ENTER a function the raw sys_enter
// dispatcher calls with the arguments laid out as that tracepoint's record (SC_ARG reads both the same way).
#if LANNER_RAW_ENTER
#define ENTER_PROBE(name) static __always_inline int enter_##name(void *args)
#else
#define ENTER_PROBE(name) TRACEPOINT_PROBE(syscalls, sys_enter_##name)
#endif

#define SCRATCH_SIZE 16384
#define AT_FDCWD_VAL (-100)
#define K_CLONE_THREAD 0x00010000ULL
#define K_CLONE_VM 0x00000100ULL
#define K_CLONE_VFORK 0x00004000ULL
#define K_SIGCHLD 17ULL
#define SC_EXIT_STASH 1000

#define SC_ARG(n) (*(const __u64 *)((const char *)args + 16 + 8 * (n)))
#define SC_RET() (*(const __s64 *)((const char *)args + 16))

// Bounds a length so the verifier sees the limit: the empty asm hides the value from the optimizer, which would
// otherwise drop a check it can prove redundant while the verifier cannot.
#define CLAMP(v, max)                                                                                              \
	({                                                                                                         \
		__u64 _v = (__u64)(v);                                                                             \
		asm volatile("" : "+r"(_v));                                                                       \
		if (_v > (max))                                                                                    \
			_v = (max);                                                                                \
		_v;                                                                                                \
	})

struct inflight {
	__u64 a[6];
	__u32 sc;
	__u32 _pad;
};

struct exec_inflight {
	__u64 filename_ptr;
	__u32 sc;
	__s32 dirfd;
	__u32 at_flags;
	__u32 argc;
	__u32 args_len;
	__u32 truncated; /* LANNER_HF_* bits */
	__u32 env_len;
	char argv[LANNER_ARGS_MAX];
	char envp[LANNER_ENV_MAX];
};

// The pid namespace of a container, registered by userspace per cgroup id once it has seen one of its processes,
// so the probes can report namespaced pids (proc.vpid) even for processes gone before /proc could be read.
struct pidns_id {
	__u64 dev;
	__u64 ino;
};

struct scratch {
	__u8 buf[SCRATCH_SIZE];
};

BPF_RINGBUF_OUTPUT(events, LANNER_RB_PAGES);
BPF_HASH(inflight, __u32, struct inflight, 16384);
BPF_HASH(execs, __u32, struct exec_inflight, 1024);
BPF_HASH(excluded, __u32, __u8, 4096);
BPF_HASH(pidns, __u64, struct pidns_id, 4096);
BPF_PERCPU_ARRAY(scratch, struct scratch, 1);
BPF_PERCPU_ARRAY(exec_scratch, struct exec_inflight, 1);
// [0] records lost: the ring refused them twice (ring_buffer_full); [1] first tries that failed (retried once).
BPF_PERCPU_ARRAY(drops, __u64, 2);
// Records stamped so far, host-wide: `started` is counted before a record reads its clock and `done` after. The fd
// marks (a dropped open's stale mark, a close stamp) are only ever compared with records' times, so a mark need not
// be rewritten while no record has read the clock since it was written (collector/fdclose.py): the old and the new
// time then fall between the same two records. That spares the clock read and the write on nearly every mark of a
// process that opens and closes in a loop while its opens are dropped.
struct rec_seq {
	__u64 started;
	__u64 done;
};
BPF_ARRAY(rec_seq, struct rec_seq, 1);

// The `done` count to keep beside a new mark, read before the mark's clock: a record counted after it read its clock
// after the mark's, so it will make rec_unchanged() false.
static __always_inline __u64 rec_done(void)
{
	__u32 zero = 0;
	struct rec_seq *q = rec_seq.lookup(&zero);
	return q ? *(volatile __u64 *)&q->done : ~0ULL;
}

// Whether no record has read the clock since a mark that kept `done`: none finished since (done unchanged) and none
// is between its two counts now (started == done).
static __always_inline int rec_unchanged(__u64 done)
{
	__u32 zero = 0;
	struct rec_seq *q = rec_seq.lookup(&zero);
	if (!q || done == ~0ULL)
		return 0;
	__u64 d = *(volatile __u64 *)&q->done;
	__u64 st = *(volatile __u64 *)&q->started;
	return d == done && st == d;
}

// The fd marks live in LRU hashes (kf_stale_fd, fd_closed) that userspace reads. A process that opens and closes in a
// loop marks the same (tgid, fd) over and over, and nearly every mark is kept (above); finding that out costs a hash
// lookup. Each CPU remembers the last mark of each map it kept or wrote: (key, its `done`, the insert count read
// before). While the key is the same, no record has been stamped since (rec_unchanged) and nothing was inserted into
// either map (an insert is the only way an entry leaves an LRU map: no program and no userspace deletes from them),
// the entry is still there with that `done`, so the lookup would keep it: it is skipped.
#define MARK_STALE 0
#define MARK_CLOSE 1
struct mark_cache {
	__u64 key;
	__u64 done;
	__u64 inserts;
};
BPF_PERCPU_ARRAY(mark_cache, struct mark_cache, 2);
// Inserts into kf_stale_fd and fd_closed so far (bumped before each insert).
BPF_ARRAY(mark_inserts, __u64, 1);

static __always_inline __u64 mark_inserts_now(void)
{
	__u32 zero = 0;
	__u64 *n = mark_inserts.lookup(&zero);
	return n ? *(volatile __u64 *)n : ~0ULL;
}

static __always_inline void mark_inserted(void)
{
	__u32 zero = 0;
	__u64 *n = mark_inserts.lookup(&zero);
	if (n)
		__sync_fetch_and_add(n, 1);
}

// Whether the mark of `key` in map `which` would be kept (see above), without looking it up.
static __always_inline int mark_cached(__u32 which, __u64 key)
{
	struct mark_cache *c = mark_cache.lookup(&which);
	if (!c || c->key != key || c->inserts == ~0ULL)
		return 0;
	return c->inserts == mark_inserts_now() && rec_unchanged(c->done);
}

// Remembers that the entry of `key` holds `done`, as seen with the insert count `inserts` read before the lookup.
static __always_inline void mark_cache_set(__u32 which, __u64 key, __u64 done, __u64 inserts)
{
	struct mark_cache *c = mark_cache.lookup(&which);
	if (c) {
		c->key = key;
		c->done = done;
		c->inserts = inserts;
	}
}

static __always_inline int is_excluded(__u32 tgid)
{
	if (tgid == LANNER_SELF_TGID)
		return 1;
	return excluded.lookup(&tgid) != NULL;
}

static __always_inline struct lanner_hdr *begin(__u32 type, __u64 id)
{
	__u32 zero = 0;
	struct scratch *s = scratch.lookup(&zero);
	if (!s)
		return NULL;
	struct lanner_hdr *h = (struct lanner_hdr *)s->buf;
	__u64 ug = bpf_get_current_uid_gid();
	struct rec_seq *q = rec_seq.lookup(&zero);
	if (q)
		__sync_fetch_and_add(&q->started, 1);
	h->ts_ns = bpf_ktime_get_boot_ns();
	if (q)
		__sync_fetch_and_add(&q->done, 1);
	h->cgroup_id = bpf_get_current_cgroup_id();
	h->type = type;
	h->size = 0;
	h->pid = id >> 32;
	h->tid = (__u32)id;
	h->uid = (__u32)ug;
	h->gid = ug >> 32;
	h->cpu = bpf_get_smp_processor_id();
	h->flags = 0;
	bpf_get_current_comm(h->comm, sizeof(h->comm));
	h->vpid = 0;
	h->vtid = 0;
	struct pidns_id *ns = pidns.lookup(&h->cgroup_id);
	if (ns) {
		struct bpf_pidns_info info = {};
		if (bpf_get_ns_current_pid_tgid(ns->dev, ns->ino, &info, sizeof(info)) == 0) {
			h->vpid = info.tgid;
			h->vtid = info.pid;
		}
	}
	return h;
}

// No flag: the kernel wakes the reader only when a record lands in an empty buffer (the reader had caught up), so a
// quiet collector sleeps until the next event, while a busy one, which polls and is always behind, is never woken.
static __always_inline void submit(struct lanner_hdr *h, __u64 size)
{
	// Hide the value from the optimizer so the bound check below survives for the verifier.
	asm volatile("" : "+r"(size));
	if (size > SCRATCH_SIZE)
		size = SCRATCH_SIZE;
	h->size = size;
	long rc = events.ringbuf_output(h, size, 0);
	if (rc == 0)
		return;
	// Only a full ring should fail. Failures with the ring nearly empty were the collector's consumer zeroing its
	// position for a moment (collector/ringbuf.py); one more try covers a rare transient (the ring's lock is a
	// resilient spinlock that may give up), and each first-try failure is counted so that such a cause shows
	// (lanner_collector_ring_retries_total) instead of hiding behind retries.
	__u32 slot = 1;
	__u64 *r = drops.lookup(&slot);
	if (r)
		*r += 1;
	if (events.ringbuf_output(h, size, 0) != 0) {
		__u32 zero = 0;
		__u64 *d = drops.lookup(&zero);
		if (d)
			*d += 1;
	}
}

static __always_inline int stash(void *args, __u32 sc, int nargs)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	if (is_excluded(id >> 32))
		return 0;
	struct inflight f = {};
	f.sc = sc;
	if (nargs > 0)
		f.a[0] = SC_ARG(0);
	if (nargs > 1)
		f.a[1] = SC_ARG(1);
	if (nargs > 2)
		f.a[2] = SC_ARG(2);
	if (nargs > 3)
		f.a[3] = SC_ARG(3);
	if (nargs > 4)
		f.a[4] = SC_ARG(4);
	inflight.update(&tid, &f);
	return 0;
}

static __always_inline int take(__u32 tid, struct inflight *out)
{
	struct inflight *f = inflight.lookup(&tid);
	if (!f)
		return 0;
	__builtin_memcpy(out, f, sizeof(*out));
	inflight.delete(&tid);
	return 1;
}

#if LANNER_REGS_ARGS
// On x86_64 a syscall's arguments stay in the task's saved user registers until it returns (di, si, dx, r10; only
// ax receives the result), so an exit probe can read them there: no enter probe and no in-flight entry, which for a
// syscall as frequent as openat is most of the cost of tracing it. (32-bit tasks' syscalls do not reach the
// syscalls:* tracepoints on x86.)
static __always_inline void regs_args(struct inflight *f)
{
	const struct pt_regs *r = (const struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	f->a[0] = r->di;
	f->a[1] = r->si;
	f->a[2] = r->dx;
	f->a[3] = r->r10;
}
#endif

/* ---------------------------------------------------------------- numeric-argument syscalls */

static __always_inline int generic_exit(void *args)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct inflight f = {};
	if (!take((__u32)id, &f))
		return 0;
	struct lanner_hdr *h = begin(LANNER_MSG_GENERIC, id);
	if (!h)
		return 0;
	struct lanner_generic *g = (struct lanner_generic *)(h + 1);
	g->res = SC_RET();
	g->sc = f.sc;
	g->_pad = 0;
	g->args[0] = f.a[0];
	g->args[1] = f.a[1];
	g->args[2] = f.a[2];
	g->args[3] = f.a[3];
	submit(h, sizeof(*h) + sizeof(*g));
	return 0;
}

#define GENERIC_PROBE(name, sc, nargs)                                                                             \
	ENTER_PROBE(name)                                                              \
	{                                                                                                          \
		return stash(args, sc, nargs);                                                                     \
	}                                                                                                          \
	TRACEPOINT_PROBE(syscalls, sys_exit_##name)                                                               \
	{                                                                                                          \
		return generic_exit(args);                                                                         \
	}

/* ---------------------------------------------------------------- exec */

_Static_assert(LANNER_ENV_MAX == LANNER_ARGS_MAX, "read_strv bounds both buffers by LANNER_ARGS_MAX");

// Copies a NULL-terminated user array of strings into `buf` as NUL-separated strings; returns the bytes used.
static __always_inline __u32 read_strv(char *buf, __u64 uvec, __u32 *count, __u32 *truncated, __u32 trunc_flag)
{
	const char *const *vec = (const char *const *)uvec;
	__u32 off = 0;
	__u32 n_strings = 0;
#pragma unroll
	for (int i = 0; i < LANNER_MAX_ARGC; i++) {
		const char *p = NULL;
		if (bpf_probe_read_user(&p, sizeof(p), &vec[i]) != 0 || !p)
			goto done;
		if (off > LANNER_ARGS_MAX - LANNER_ARG_MAX) {
			*truncated |= trunc_flag;
			goto done;
		}
		int n = bpf_probe_read_user_str(&buf[off], LANNER_ARG_MAX, p);
		if (n <= 0)
			goto done;
		if (n == LANNER_ARG_MAX)
			*truncated |= trunc_flag;
		off += n;
		n_strings++;
	}
	{
		const char *more = NULL;
		bpf_probe_read_user(&more, sizeof(more), &vec[LANNER_MAX_ARGC]);
		if (more)
			*truncated |= trunc_flag;
	}
done:
	*count = n_strings;
	return off;
}

static __always_inline int exec_enter(void *args, __u32 sc, __u64 fname, __u64 argv, __u64 envp, __s32 dirfd,
				      __u32 at_flags)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	__u32 zero = 0;
	if (is_excluded(id >> 32))
		return 0;
	struct exec_inflight *e = exec_scratch.lookup(&zero);
	if (!e)
		return 0;
	e->filename_ptr = fname;
	e->sc = sc;
	e->dirfd = dirfd;
	e->at_flags = at_flags;
	e->truncated = 0;
	__u32 argc = 0;
	e->args_len = read_strv(e->argv, argv, &argc, &e->truncated, LANNER_HF_ARGS_TRUNCATED);
	e->argc = argc;
	e->env_len = 0;
	if (LANNER_CAPTURE_ENV && envp) {
		__u32 envc = 0;
		e->env_len = read_strv(e->envp, envp, &envc, &e->truncated, LANNER_HF_ENV_TRUNCATED);
	}
	execs.update(&tid, e);
	return 0;
}

ENTER_PROBE(execve)
{
	return exec_enter(args, LANNER_SC_EXECVE, SC_ARG(0), SC_ARG(1), SC_ARG(2), AT_FDCWD_VAL, 0);
}

ENTER_PROBE(execveat)
{
	return exec_enter(args, LANNER_SC_EXECVEAT, SC_ARG(1), SC_ARG(2), SC_ARG(3), (__s32)SC_ARG(0), (__u32)SC_ARG(4));
}

// Copies the argv and environment captured at enter behind the filename already placed at `tail`; returns the
// bytes added.
static __always_inline __u32 put_exec_args(struct lanner_exec *x, char *tail, __u32 fn_len, struct exec_inflight *e,
					   struct lanner_hdr *h)
{
	__u64 len = CLAMP(e->args_len, LANNER_ARGS_MAX);
	__u64 off = CLAMP(fn_len, LANNER_PATH_MAX);
	if (len > 0 && bpf_probe_read_kernel(tail + off, len, e->argv) != 0)
		len = 0;
	__u64 env_len = CLAMP(e->env_len, LANNER_ENV_MAX);
	__u64 env_off = off + CLAMP(len, LANNER_ARGS_MAX);
	if (env_len > 0 && bpf_probe_read_kernel(tail + env_off, env_len, e->envp) != 0)
		env_len = 0;
	x->args_len = len;
	x->env_len = env_len;
	x->argc = e->argc;
	x->sc = e->sc;
	x->dirfd = e->dirfd;
	x->at_flags = e->at_flags;
	h->flags |= e->truncated;
	return len + env_len;
}

#if LANNER_BTF
// Reads a kernel value at `base + off` (offsets from BTF); the destination stays zero when the read fails.
#define KREAD(dst, base, off) bpf_probe_read_kernel(&(dst), sizeof(dst), (const char *)(base) + (off))

static __always_inline __u32 pid_nr_at(const char *pid, __u32 level)
{
	__u32 nr = 0;
	if (pid)
		KREAD(nr, pid, K_PID_NUMBERS + (level & 63) * K_UPID_SIZE + K_UPID_NR);
	return nr;
}

// What the kernel knows about the task that just exec'd, read before it can exit: its executable's inode,
// credentials, terminal, parent and namespaces.
static __always_inline void fill_task(struct lanner_task *t)
{
	const char *task = (const char *)bpf_get_current_task();
	const char *p = NULL;
	__builtin_memset(t, 0, sizeof(*t));
	t->flags = LANNER_TF_VALID;

	const char *mm = NULL, *file = NULL, *inode = NULL, *sb = NULL, *mnt = NULL, *dentry = NULL;
	KREAD(mm, task, K_TASK_MM);
	if (mm)
		KREAD(file, mm, K_MM_EXE_FILE);
	if (file) {
		KREAD(inode, file, K_FILE_INODE);
		KREAD(mnt, file, K_FILE_PATH_MNT);
		KREAD(dentry, file, K_FILE_PATH_DENTRY);
	}
	if (inode) {
		__u64 sec = 0;
		__u32 nsec = 0;
		__u16 mode = 0;
		KREAD(t->exe_ino, inode, K_INODE_INO);
		KREAD(mode, inode, K_INODE_MODE);
		t->exe_mode = mode;
		KREAD(t->exe_uid, inode, K_INODE_UID);
		KREAD(t->exe_gid, inode, K_INODE_GID);
		KREAD(sec, inode, K_INODE_CTIME_SEC);
		KREAD(nsec, inode, K_INODE_CTIME_NSEC);
		// Bits 30-31 of the nanoseconds are flags on kernels with multigrain timestamps (I_CTIME_QUERIED).
		t->exe_ctime_ns = sec * 1000000000ULL + (nsec & 0x3fffffff);
		sec = 0;
		nsec = 0;
		KREAD(sec, inode, K_INODE_MTIME_SEC);
		KREAD(nsec, inode, K_INODE_MTIME_NSEC);
		t->exe_mtime_ns = sec * 1000000000ULL + (nsec & 0x3fffffff);
		KREAD(sb, inode, K_INODE_SB);
	}
	if (sb) {
		KREAD(t->sb_magic, sb, K_SB_MAGIC);
		KREAD(t->sb_flags, sb, K_SB_FLAGS);
	}
	if (mnt)
		KREAD(t->mnt_flags, mnt, K_MNT_FLAGS);
#if K_OVL_UPPER_DELTA >= 0
	// overlayfs embeds the VFS inode in its own ovl_inode, followed by the upper (writable layer) dentry.
	if (inode && t->sb_magic == 0x794c7630ULL) {
		const char *upper = NULL;
		KREAD(upper, inode, K_OVL_UPPER_DELTA);
		t->flags |= LANNER_TF_UPPER_KNOWN | (upper ? LANNER_TF_UPPER : 0);
	}
#endif
	if (dentry) {
		const char *name = NULL;
		char head[8] = {};
		KREAD(name, dentry, K_DENTRY_NAME);
		if (name && bpf_probe_read_kernel_str(head, sizeof(head), name) > 6 && head[0] == 'm' && head[1] == 'e' &&
		    head[2] == 'm' && head[3] == 'f' && head[4] == 'd' && head[5] == ':')
			t->flags |= LANNER_TF_MEMFD;
	}

	const char *cred = NULL;
	KREAD(cred, task, K_TASK_CRED);
	if (cred) {
		KREAD(t->euid, cred, K_CRED_EUID);
		KREAD(t->egid, cred, K_CRED_EGID);
		KREAD(t->cap_inheritable, cred, K_CRED_CAP_INH);
		KREAD(t->cap_permitted, cred, K_CRED_CAP_PRM);
		KREAD(t->cap_effective, cred, K_CRED_CAP_EFF);
	}
#if K_TASK_LOGINUID >= 0
	if (KREAD(t->loginuid, task, K_TASK_LOGINUID) == 0)
		t->flags |= LANNER_TF_LOGINUID;
#endif

	KREAD(p, task, K_TASK_REAL_PARENT);
	if (p) {
		KREAD(t->ppid, p, K_TASK_TGID);
		bpf_probe_read_kernel(t->pcomm, sizeof(t->pcomm), p + K_TASK_COMM);
	}

	const char *sig = NULL;
	KREAD(sig, task, K_TASK_SIGNAL);
	if (sig) {
		const char *tty = NULL, *drv = NULL, *pid = NULL;
		KREAD(tty, sig, K_SIGNAL_TTY);
		if (tty) {
			__s32 index = 0, major = 0, minor = 0;
			KREAD(index, tty, K_TTY_INDEX);
			KREAD(drv, tty, K_TTY_DRIVER);
			if (drv) {
				KREAD(major, drv, K_DRIVER_MAJOR);
				KREAD(minor, drv, K_DRIVER_MINOR_START);
			}
			t->tty = ((__u32)major << 20) | ((__u32)(minor + index) & 0xfffff);
		}
		KREAD(pid, sig, K_SIGNAL_PIDS + 8 * K_PIDTYPE_SID);
		t->sid = pid_nr_at(pid, 0);
		pid = NULL;
		KREAD(pid, sig, K_SIGNAL_PIDS + 8 * K_PIDTYPE_PGID);
		t->pgid = pid_nr_at(pid, 0);
	}

	const char *tp = NULL;
	KREAD(tp, task, K_TASK_THREAD_PID);
	if (tp) {
		__u32 level = 0;
		const char *ns = NULL;
		KREAD(level, tp, K_PID_LEVEL);
		t->vpid = pid_nr_at(tp, level);
		KREAD(ns, tp, K_PID_NUMBERS + (level & 63) * K_UPID_SIZE + K_UPID_NS);
		if (ns)
			KREAD(t->pidns, ns, K_PIDNS_INUM);
	}
	const char *nsp = NULL, *mntns = NULL;
	KREAD(nsp, task, K_TASK_NSPROXY);
	if (nsp)
		KREAD(mntns, nsp, K_NSPROXY_MNT);
	if (mntns)
		KREAD(t->mntns, mntns, K_MNTNS_INUM);
}
#else
static __always_inline void fill_task(struct lanner_task *t)
{
	__builtin_memset(t, 0, sizeof(*t));
}
#endif

TRACEPOINT_PROBE(sched, sched_process_exec)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (is_excluded(id >> 32))
		return 0;
	__u32 old = (__u32)args->old_pid;
	struct lanner_hdr *h = begin(LANNER_MSG_EXEC, id);
	if (!h)
		return 0;
	struct lanner_exec *x = (struct lanner_exec *)(h + 1);
	struct lanner_task *task = (struct lanner_task *)(x + 1);
	char *tail = (char *)(task + 1);
	fill_task(task);
	x->res = 0;
	x->old_tid = old;
	x->sc = LANNER_SC_EXECVE;
	x->dirfd = AT_FDCWD_VAL;
	x->at_flags = 0;
	x->argc = 0;
	x->args_len = 0;
	x->env_len = 0;
	x->_pad[0] = x->_pad[1] = x->_pad[2] = 0;
	unsigned short loc = args->data_loc_filename & 0xFFFF;
	int n = bpf_probe_read_kernel_str(tail, LANNER_PATH_MAX, (const char *)args + loc);
	__u32 fn_len = n > 0 ? n : 0;
	x->filename_len = fn_len;
	__u32 alen = 0;
	struct exec_inflight *e = execs.lookup(&old);
	if (e) {
		alen = put_exec_args(x, tail, fn_len, e, h);
		execs.delete(&old);
	}
	submit(h, sizeof(*h) + sizeof(*x) + sizeof(*task) + CLAMP(fn_len, LANNER_PATH_MAX) +
		      CLAMP(alen, LANNER_ARGS_MAX + LANNER_ENV_MAX));
	return 0;
}

// A successful exec already reported from sched_process_exec and removed its entry; what is left here failed.
static __always_inline int exec_exit(void *args)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct exec_inflight *e = execs.lookup(&tid);
	if (!e)
		return 0;
	__s64 ret = SC_RET();
	if (ret >= 0) {
		execs.delete(&tid);
		return 0;
	}
	struct lanner_hdr *h = begin(LANNER_MSG_EXEC, id);
	if (!h) {
		execs.delete(&tid);
		return 0;
	}
	struct lanner_exec *x = (struct lanner_exec *)(h + 1);
	struct lanner_task *task = (struct lanner_task *)(x + 1);
	char *tail = (char *)(task + 1);
	__builtin_memset(task, 0, sizeof(*task));
	x->res = ret;
	x->old_tid = tid;
	x->_pad[0] = x->_pad[1] = x->_pad[2] = 0;
	int n = bpf_probe_read_user_str(tail, LANNER_PATH_MAX, (const char *)e->filename_ptr);
	__u32 fn_len = n > 0 ? n : 0;
	x->filename_len = fn_len;
	__u32 alen = put_exec_args(x, tail, fn_len, e, h);
	execs.delete(&tid);
	submit(h, sizeof(*h) + sizeof(*x) + sizeof(*task) + CLAMP(fn_len, LANNER_PATH_MAX) +
		      CLAMP(alen, LANNER_ARGS_MAX + LANNER_ENV_MAX));
	return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_execve)
{
	return exec_exit(args);
}

TRACEPOINT_PROBE(syscalls, sys_exit_execveat)
{
	return exec_exit(args);
}

/* ---------------------------------------------------------------- fork / exit */

ENTER_PROBE(clone)
{
	return stash(args, LANNER_SC_CLONE, 1);
}

ENTER_PROBE(clone3)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	if (is_excluded(id >> 32))
		return 0;
	struct inflight f = {};
	f.sc = LANNER_SC_CLONE3;
	// struct clone_args starts with the u64 flags.
	bpf_probe_read_user(&f.a[0], sizeof(f.a[0]), (const void *)SC_ARG(0));
	inflight.update(&tid, &f);
	return 0;
}

ENTER_PROBE(fork)
{
	return stash(args, LANNER_SC_FORK, 0);
}

ENTER_PROBE(vfork)
{
	return stash(args, LANNER_SC_VFORK, 0);
}

TRACEPOINT_PROBE(sched, sched_process_fork)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	__u32 ptgid = id >> 32;
	__u32 child = (__u32)args->child_pid;
	__u32 sc = LANNER_SC_KTHREAD;
	__u64 flags = 0;
	struct inflight f = {};
	if (take(tid, &f)) {
		sc = f.sc;
		if (sc == LANNER_SC_CLONE || sc == LANNER_SC_CLONE3)
			flags = f.a[0];
		else if (sc == LANNER_SC_FORK)
			flags = K_SIGCHLD;
		else if (sc == LANNER_SC_VFORK)
			flags = K_CLONE_VFORK | K_CLONE_VM | K_SIGCHLD;
		else
			sc = LANNER_SC_KTHREAD;
	}
	__u32 child_tgid = (flags & K_CLONE_THREAD) ? ptgid : child;
	if (is_excluded(ptgid)) {
		// Children of excluded processes (the collector's helpers) are excluded too.
		if (!(flags & K_CLONE_THREAD)) {
			__u8 one = 1;
			excluded.update(&child_tgid, &one);
		}
		return 0;
	}
	struct lanner_hdr *h = begin(LANNER_MSG_FORK, id);
	if (!h)
		return 0;
	struct lanner_fork *k = (struct lanner_fork *)(h + 1);
	k->clone_flags = flags;
	k->sc = sc;
	k->parent_pid = ptgid;
	k->parent_tid = tid;
	k->child_tid = child;
	k->child_pid = child_tgid;
	k->_pad = 0;
	submit(h, sizeof(*h) + sizeof(*k));
	return 0;
}

ENTER_PROBE(exit_group)
{
	return stash(args, SC_EXIT_STASH, 1);
}

ENTER_PROBE(exit)
{
	return stash(args, SC_EXIT_STASH, 1);
}

TRACEPOINT_PROBE(sched, sched_process_exit)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	__u32 tgid = id >> 32;
	struct inflight f = {};
	int have = take(tid, &f) && f.sc == SC_EXIT_STASH;
	execs.delete(&tid);
	__u32 group_dead = args->group_dead ? 1 : 0;
	if (is_excluded(tgid)) {
		if (group_dead)
			excluded.delete(&tgid);
		return 0;
	}
	struct lanner_hdr *h = begin(LANNER_MSG_EXIT, id);
	if (!h)
		return 0;
	struct lanner_exit *x = (struct lanner_exit *)(h + 1);
	x->code = have ? (__s32)f.a[0] : 0;
	x->has_code = have;
	x->group_dead = group_dead;
	x->_pad = 0;
	submit(h, sizeof(*h) + sizeof(*x));
	return 0;
}

/* ---------------------------------------------------------------- open family */

/* ---------------------------------------------------------------- kernel filter */

// Events no enabled rule can match are counted and dropped here. Userspace (collector/kfilter.py) fills the maps from
// the rule engine's filter spec: atoms (numbered bits of a u64) evaluated to true / false / unknown, then clauses per
// syscall (indexed by LANNER_SC_*), of which one must not be false. Numbers below are shared with
// ruleengine/kfilter.py (AtomKind). Opens go through kf_open_filter, socket and file-operation records through
// kf_rec_filter: each is one program, verified once, reached by a tail call.
#define KF_PATH_KEY 256
#define KF_SUFFIX_KEY 64
#define KF_MAX_NUM 64
#define KF_MAX_CLAUSES 64
#define KF_SLOTS 128   /* by LANNER_SC_* */
#define KF_PATH_ARGS 3 /* 0: the open's path; 1 and 2: a file operation's first and second path, as passed */
#define KF_ACC_WRITE 5
#define KF_ACC_READ 6
#define KF_FDNUM 7
#define KF_RES 8
#define KF_FAMILY 10
#define KF_OP_EQ 0
#define KF_OP_NE 1
#define KF_OP_LT 2
#define KF_OP_LE 3
#define KF_OP_GT 4
#define KF_OP_GE 5

// Entry i of kf_conf holds the path-atom bits of path argument i; the other fields are read from entry 0.
struct kf_conf {
	__u64 exact_all;  /* bits of PATH_EXACT atoms */
	__u64 prefix_all; /* PATH_PREFIX */
	__u64 suffix_all; /* PATH_SUFFIX */
	__u64 comm_all;   /* COMM */
	__u64 dotdot;     /* RAW_DOTDOT */
	__u64 exact_mask; /* atoms whose "true" is reliable (the others are only ever false or unknown) */
	__u32 n_num;      /* entries used in kf_num */
	__u32 _pad;
	__u64 sport_all;  /* SPORT */
	__u64 pmatch_all; /* PATH_PMATCH: a prefix judged only on an absolute path without "//" */
};

struct kf_num {
	__u32 kind;  /* KF_ACC_WRITE ... KF_FAMILY */
	__u32 op;    /* KF_OP_* */
	__s64 value; /* KF_FAMILY: a bit mask of address families */
	__u64 bit;
};

struct kf_clause {
	__u64 must_true;  /* false when one of these atoms is false */
	__u64 must_false; /* ... or one of these is true */
};

struct kf_sc {
	__u32 mode; /* 0: not filtered; 1: filtered by n clauses (0 clauses: drop every event) */
	__u32 n;
};

// One buffer for every path key: `prefixlen` is 0 for the exact-path hash and the bit length for the LPM trie.
struct kf_key {
	__u32 prefixlen;
	char s[KF_PATH_KEY];
};

struct kf_sfx_key {
	__u32 prefixlen;
	char s[KF_SUFFIX_KEY]; /* the path's last bytes, last first */
};

struct kf_comm_key {
	char c[16];
};

struct kf_open_args {
	__u64 name_ptr;
	__u64 resolve;
	__s64 res;
	__u32 sc;
	__s32 dirfd;
	__u32 flags;
	__u32 mode;
};

struct kf_scratch {
	struct kf_open_args args;
	struct kf_key key;
	struct kf_key ekey; /* the exact-path hash key: the path, zero-filled to its end (the hash covers every byte) */
	struct kf_sfx_key sfx;
	__u32 w; /* the last four bytes seen, newest lowest */
	__u32 bad;
	__u32 dotdot;
	__u32 len;
	__u32 loose; /* the path is relative or holds "//" */
	__u32 _pad;
	/* what the path programs hand to kf_decide_prog */
	__u64 yes; /* atoms known true */
	__u64 no;  /* atoms known false */
	__s64 res;
	__s64 stale; /* the fd to mark stale when the event is dropped (-1: none) */
	__u32 sc;
	__u32 flags;
	__s32 family; /* -1: not known here */
	__s32 sport;  /* -1: not known here */
	__u32 open;   /* 1: an open (kf_open_filter; `kn` bytes of its path are in key.s), 0: a record in `scratch` */
	__s32 kn;
	__u32 num_done;  /* the numeric atoms are in yes/no already (kf_open_filter judged them before the path) */
	__u32 have_path; /* kf_open_filter read the path (`kn`) already, to compare it with its memo */
};

BPF_ARRAY(kf_conf, struct kf_conf, KF_PATH_ARGS);
BPF_ARRAY(kf_num, struct kf_num, KF_MAX_NUM);
BPF_ARRAY(kf_clauses, struct kf_clause, KF_SLOTS *KF_MAX_CLAUSES);
BPF_ARRAY(kf_sc, struct kf_sc, KF_SLOTS);
BPF_HASH(kf_exact, struct kf_key, __u64, 4096);
BPF_LPM_TRIE(kf_prefix, struct kf_key, __u64, 4096);
BPF_LPM_TRIE(kf_suffix, struct kf_sfx_key, __u64, 4096);
BPF_HASH(kf_comm, struct kf_comm_key, __u64, 4096);
BPF_HASH(kf_sport, __u32, __u64, 4096);
BPF_PERCPU_ARRAY(kf_passed, __u64, KF_SLOTS);
BPF_PERCPU_ARRAY(kf_filtered, __u64, KF_SLOTS);
// fd numbers a filtered event handed out or changed: (tgid << 32 | fd) -> boot time of that event, and the record
// count it was written at (rec_done).
struct kf_stale {
	__u64 ts;
	__u64 done;
};
BPF_TABLE("lru_hash", __u64, struct kf_stale, kf_stale_fd, 65536);
// Raw sockets (tgid << 32 | fd): the collector reports them as IP sockets whatever address a connect names.
BPF_TABLE("lru_hash", __u64, __u8, kf_rawsk, 4096);
BPF_PERCPU_ARRAY(kf_scratch_map, struct kf_scratch, 1);
BPF_PROG_ARRAY(kf_prog, 3); /* 0: kf_open_filter, 1: kf_rec_filter, 2: kf_decide_prog */
// A one-bit-per-string Bloom filter over the exact paths (length and last four bytes, which the path scan has at hand):
// most paths miss it, and a miss saves hashing the 260-byte key of kf_exact. Words 0..63 are the bits; word 64 is 1
// while they match kf_exact (userspace writes it last), else the filter is not used.
#define KF_BLOOM_WORDS 64
BPF_ARRAY(kf_exact_bloom, __u64, KF_BLOOM_WORDS + 1);

// 0 when no exact path of length `len` whose last four bytes are `w` (newest lowest) is in kf_exact; mirrored by
// collector/kfilter.py (bloom_bit).
static __always_inline int kf_exact_maybe(__u32 w, __u32 len)
{
	__u32 valid = KF_BLOOM_WORDS;
	__u64 *ok = kf_exact_bloom.lookup(&valid);
	if (!ok || *ok != 1)
		return 1;
	__u32 h = (w * 0x9E3779B1U) ^ (len * 0x85EBCA77U);
	__u32 word = h >> 26;
	__u64 *bits = kf_exact_bloom.lookup(&word);
	return !bits || ((*bits >> ((h >> 20) & 63)) & 1);
}

static __always_inline int kf_cmp(__s64 v, __u32 op, __s64 n)
{
	switch (op) {
	case KF_OP_EQ:
		return v == n;
	case KF_OP_NE:
		return v != n;
	case KF_OP_LT:
		return v < n;
	case KF_OP_LE:
		return v <= n;
	case KF_OP_GT:
		return v > n;
	default:
		return v >= n;
	}
}

static __always_inline void kf_count(int filtered, __u32 slot)
{
	__u64 *c = filtered ? kf_filtered.lookup(&slot) : kf_passed.lookup(&slot);
	if (c)
		*c += 1;
}

// 1 when some clause of syscall slot `slot` (`n` clauses) is not false given the atoms known true (`yes`) and false;
// `*need` gets the atoms the clauses still alive read (the others cannot change the outcome).
// No early exit: every path leaves the loop at its end, so the verifier explores what follows once, not once per
// clause (with two passes it would run out of its budget).
static __always_inline int kf_any_clause(__u32 slot, __u32 n, __u64 yes, __u64 no, __u64 *need)
{
	__u32 alive = 0;
	__u64 used = 0;
	__u32 base = slot * KF_MAX_CLAUSES;
	for (__u32 i = 0; i < KF_MAX_CLAUSES; i++) {
		if (i >= n)
			break;
		// Hidden from the optimizer, which would otherwise count the index instead of i, leaving the verifier
		// with a loop bound it cannot see.
		__u32 j = i;
		asm volatile("" : "+r"(j));
		__u32 idx = base + j;
		struct kf_clause *c = kf_clauses.lookup(&idx);
		if (!c)
			break;
		__u64 t = c->must_true, f = c->must_false;
		__u32 live = ((t & no) | (f & yes)) == 0;
		alive |= live;
		used |= live ? t | f : 0;
	}
	*need = used;
	return alive;
}

static __always_inline __u64 kf_fd_key(__s64 fd)
{
	return (bpf_get_current_pid_tgid() & 0xFFFFFFFF00000000ULL) | (__u32)fd;
}

// The fd table in userspace must not trust what it knew of this fd number before a dropped event changed it.
static __always_inline void kf_mark_stale(__s64 fd)
{
	if (fd < 0)
		return;
	__u64 k = kf_fd_key(fd);
	if (mark_cached(MARK_STALE, k))
		return;
	__u64 ins = mark_inserts_now();
	// A busy process reuses its numbers: rewriting a mark in place costs less than an LRU map update, and keeping
	// it costs less again while no record has been stamped since (rec_seq).
	struct kf_stale *mark = kf_stale_fd.lookup(&k);
	if (mark && rec_unchanged(mark->done)) {
		mark_cache_set(MARK_STALE, k, mark->done, ins);
		return;
	}
	struct kf_stale v = {};
	v.done = rec_done();
	v.ts = bpf_ktime_get_boot_ns();
	if (mark) {
		*mark = v;
	} else {
		mark_inserted();
		if (kf_stale_fd.update(&k, &v) != 0)
			return;
	}
	mark_cache_set(MARK_STALE, k, v.done, ins);
}

// The last open each CPU dropped after reading its path, with what decided it: an open with the same syscall, flags,
// result and path is dropped again without judging it (a process opening one file in a loop gets the same fd each
// time). The decision reads nothing else (the comm is judged only in kf_decide_prog, for opens still alive).
// kf_gen is bumped by userspace before and after it rewrites the filter maps: a memo made before the last bump is
// never used.
struct kf_memo {
	__u64 gen;
	__s64 res;
	__u32 sc;
	__u32 flags;
	__s32 kn;
	__u32 _pad;
	char s[KF_PATH_KEY];
};
BPF_PERCPU_ARRAY(kf_memo, struct kf_memo, 1);
// Only paths this short are remembered (the compare is unrolled).
#define KF_MEMO_PATH 64
BPF_ARRAY(kf_gen, __u64, 1);

static __always_inline __u64 kf_gen_now(void)
{
	__u32 zero = 0;
	__u64 *g = kf_gen.lookup(&zero);
	return g ? *(volatile __u64 *)g : ~0ULL;
}

// Whether the `kn` bytes (bpf_probe_read_user_str's count, NUL included) in `key` are the memo's path.
static __always_inline int kf_memo_same(struct kf_memo *m, const char *key, int kn)
{
	if (kn <= 0 || kn > KF_MEMO_PATH || m->kn != kn)
		return 0;
	const __u64 *a = (const __u64 *)key, *b = (const __u64 *)m->s;
	__u64 diff = 0;
#pragma unroll
	for (__u32 i = 0; i < KF_MEMO_PATH / 8; i++) {
		__s32 left = kn - (__s32)(i * 8);
		// Bytes past the string are left over from earlier paths: not compared.
		__u64 mask = left >= 8 ? ~0ULL : left > 0 ? (1ULL << ((left & 7) * 8)) - 1 : 0;
		diff |= (a[i] ^ b[i]) & mask;
	}
	return diff == 0;
}

// The filter mode of syscall `sc`; NULL when its events are not filtered (they count as passed then).
static __always_inline struct kf_sc *kf_mode(__u32 sc)
{
	__u32 slot = sc;
	if (slot >= KF_SLOTS)
		return NULL;
	struct kf_sc *mode = kf_sc.lookup(&slot);
	if (!mode || !mode->mode) {
		kf_count(0, slot);
		return NULL;
	}
	return mode;
}

// The path atoms of path argument `arg` over the string in ks->key.s (`kn` as bpf_probe_read_*_str returned it, the
// key zero-filled beforehand). `resolved`: the collector reports the path resolved and normalised (opens), so only a
// path already absolute and normalised can be judged; otherwise it reports the string as passed.
// `need`: the atoms worth judging (a lookup for atoms no live clause reads is skipped: they stay unknown, which
// cannot revive a clause another atom already made false).
static __always_inline void kf_path_bits(struct kf_scratch *ks, int kn, __u32 arg, int resolved, __u64 need,
					 __u64 *yes, __u64 *no)
{
	struct kf_conf *conf = kf_conf.lookup(&arg);
	if (!conf)
		return;
	// One pass over the path: is it judgeable and does it contain "../"? The scan state lives in the scratch map
	// and is read back through volatile loads, so the verifier does not track each character's value (which would
	// multiply its states per iteration beyond its limit).
	volatile __u32 *vw = &ks->w, *vbad = &ks->bad, *vdd = &ks->dotdot, *vlen = &ks->len, *vloose = &ks->loose;
	*vw = 0;
	*vbad = kn <= 1 || kn >= KF_PATH_KEY || (resolved && ks->key.s[0] != '/');
	*vloose = ks->key.s[0] != '/';
	*vdd = 0;
	*vlen = 0;
	for (__u32 i = 0; i < KF_PATH_KEY - 1; i++) {
		char c = ks->key.s[i];
		if (c == 0)
			break;
		__u32 w = (*vw << 8) | (__u8)c;
		*vw = w;
		*vlen = i + 1;
		if (resolved && ((w & 0xFFFF) == 0x2f2f || (w & 0xFFFFFF) == 0x2f2e2f || w == 0x2f2e2e2f))
			*vbad = 1;
		if ((w & 0xFFFFFF) == 0x2e2e2f)
			*vdd = 1;
		if ((w & 0xFFFF) == 0x2f2f)
			*vloose = 1;
	}
	__u32 w = *vw;
	__u32 len = *vlen;
	if (resolved && ((w & 0xFFFF) == 0x2f2e || (w & 0xFFFFFF) == 0x2f2e2e || ((w & 0xFF) == 0x2f && len > 1)))
		*vbad = 1;
	int bad = *vbad;
	if (*vdd)
		*yes |= conf->dotdot;
	else if (kn > 0 && kn < KF_PATH_KEY)
		*no |= conf->dotdot;
	len &= KF_PATH_KEY - 1;
	__u64 exact_all = conf->exact_all & need, prefix_all = conf->prefix_all & need;
	__u64 suffix_all = conf->suffix_all & need, pmatch_all = conf->pmatch_all & need;
	if (!bad && (exact_all | prefix_all | suffix_all | pmatch_all)) {
		__u64 exact_mask = conf->exact_mask;
		__u64 *m = NULL;
		if (exact_all && kf_exact_maybe(w, len)) {
			// The path buffer is not zeroed past the path (that would cost every open a 256-byte memset for a
			// lookup the Bloom filter makes rare): the key is built here.
			__builtin_memset(ks->ekey.s, 0, sizeof(ks->ekey.s));
			ks->ekey.prefixlen = 0;
			bpf_probe_read_kernel(ks->ekey.s, CLAMP(len, KF_PATH_KEY - 1), ks->key.s);
			m = kf_exact.lookup(&ks->ekey);
		}
		__u64 hit = m ? *m : 0;
		*yes |= hit & exact_all;
		*no |= exact_all & ~hit;
		if (prefix_all | pmatch_all) {
			ks->key.prefixlen = len * 8;
			m = kf_prefix.lookup(&ks->key);
			hit = m ? *m : 0;
			*yes |= hit & prefix_all & exact_mask;
			*no |= prefix_all & ~hit;
			if (!*vloose)
				*no |= pmatch_all & ~hit;
		}
		if (!suffix_all)
			return;
		__u32 sl = len < KF_SUFFIX_KEY ? len : KF_SUFFIX_KEY;
		// A fixed number of copies (bytes past `sl` are ignored by the trie): no exit per length to verify.
		for (__u32 j = 0; j < KF_SUFFIX_KEY; j++)
			ks->sfx.s[j] = ks->key.s[(len - 1 - j) & (KF_PATH_KEY - 1)];
		ks->sfx.prefixlen = sl * 8;
		m = kf_suffix.lookup(&ks->sfx);
		hit = m ? *m : 0;
		*yes |= hit & suffix_all & exact_mask;
		*no |= suffix_all & ~hit;
	}
}

// The numeric atoms (result, open flags, address family; `family` -1 when not known here) into yes / no.
static __always_inline void kf_num_bits(struct kf_conf *conf, __u32 flags, __s64 res, __s32 family, __u64 *yes,
					__u64 *no)
{
	__u32 n_num = conf->n_num;
	for (__u32 i = 0; i < KF_MAX_NUM; i++) {
		if (i >= n_num)
			break;
		struct kf_num *a = kf_num.lookup(&i);
		if (!a)
			break;
		int v;
		if (a->kind == KF_ACC_WRITE)
			v = (flags & 3) == 1 || (flags & 3) == 2;
		else if (a->kind == KF_ACC_READ)
			v = (flags & 3) == 0 || (flags & 3) == 2;
		else if (a->kind == KF_FDNUM)
			v = kf_cmp(res >= 0 ? res : -1, a->op, a->value);
		else if (a->kind == KF_FAMILY)
			// Only ever false or unknown (the collector may take the family from an earlier call).
			v = family >= 0 && family < 64 && !(((__u64)a->value >> (family & 63)) & 1) ? 0 : 2;
		else
			v = kf_cmp(res, a->op, a->value);
		if (v == 1)
			*yes |= a->bit;
		else if (v == 0)
			*no |= a->bit;
	}
}

// The atoms every event has (comm, result, open flags, address family and server port, -1 when not known here;
// the numeric ones already in yes / no when `num_done`), then the clauses of `mode`: 1 when some clause is not false
// (the event goes to userspace), 0 to drop it.
static __always_inline int kf_decide(__u32 sc, struct kf_sc *mode, __u64 yes, __u64 no, __u32 flags, __s64 res,
				     __s32 family, __s32 sport, __u32 num_done)
{
	__u32 zero = 0;
	__u32 slot = sc & (KF_SLOTS - 1);
	struct kf_conf *conf = kf_conf.lookup(&zero);
	if (!conf) {
		kf_count(0, slot);
		return 1;
	}
	if (conf->sport_all && sport >= 0) {
		__u32 pk = sport;
		__u64 *m = kf_sport.lookup(&pk);
		__u64 hit = m ? *m : 0;
		yes |= hit;
		no |= conf->sport_all & ~hit;
	}
	if (!num_done)
		kf_num_bits(conf, flags, res, family, &yes, &no);
	__u64 need = 0;
	// The comm last: it takes a helper call and a hash lookup, and is not needed once every clause is false (the
	// usual case for an open no rule wants: its path or flags already decide).
	int alive = kf_any_clause(slot, mode->n, yes, no, &need);
	if (alive && (conf->comm_all & need)) {
		struct kf_comm_key ck = {};
		bpf_get_current_comm(ck.c, sizeof(ck.c));
		if (ck.c[0]) {
			__u64 *m = kf_comm.lookup(&ck);
			__u64 hit = m ? *m : 0;
			yes |= hit;
			no |= conf->comm_all & ~hit;
			alive = kf_any_clause(slot, mode->n, yes, no, &need);
		}
	}
	kf_count(!alive, slot);
	return alive;
}

// Hands a record built in the scratch buffer to kf_rec_filter, which submits or drops it; without the filter
// program (not installed) the record is submitted here.
static __always_inline void submit_filtered(void *args, struct lanner_hdr *h, __u64 size)
{
	h->size = size;
	kf_prog.call(args, 1);
	submit(h, size);
}

#if LANNER_FAM_OPEN

struct open_how_user {
	__u64 flags;
	__u64 mode;
	__u64 resolve;
};

#if !LANNER_REGS_ARGS
ENTER_PROBE(open)
{
	return stash(args, LANNER_SC_OPEN, 3);
}
ENTER_PROBE(openat)
{
	return stash(args, LANNER_SC_OPENAT, 4);
}
ENTER_PROBE(openat2)
{
	return stash(args, LANNER_SC_OPENAT2, 3);
}
ENTER_PROBE(creat)
{
	return stash(args, LANNER_SC_CREAT, 2);
}
ENTER_PROBE(open_by_handle_at)
{
	return stash(args, LANNER_SC_OPEN_BY_HANDLE_AT, 3);
}
#endif

static __always_inline int open_emit(struct kf_scratch *ks, int kn);

static __always_inline int open_exit(void *args, __u32 sc)
{
	struct inflight f = {};
	__s64 res = SC_RET();
	if (LANNER_DROP_FAILED_OPEN && res < 0)
		return 0;
#if LANNER_REGS_ARGS
	// Excluded processes are skipped in open_emit: most opens are dropped by the filter before that lookup.
	f.sc = sc;
	regs_args(&f);
#else
	if (!take((__u32)bpf_get_current_pid_tgid(), &f))
		return 0;
#endif
	__u64 name_ptr = 0;
	__s32 dirfd = AT_FDCWD_VAL;
	__u32 flags = 0, mode = 0;
	__u64 resolve = 0;
	if (f.sc == LANNER_SC_OPEN) {
		name_ptr = f.a[0];
		flags = f.a[1];
		mode = f.a[2];
	} else if (f.sc == LANNER_SC_CREAT) {
		name_ptr = f.a[0];
		flags = 01 | 0100 | 01000; /* O_WRONLY|O_CREAT|O_TRUNC, as creat(2) defines */
		mode = f.a[1];
	} else if (f.sc == LANNER_SC_OPENAT2) {
		struct open_how_user how = {};
		dirfd = (__s32)f.a[0];
		name_ptr = f.a[1];
		bpf_probe_read_user(&how, sizeof(how), (const void *)f.a[2]);
		flags = how.flags;
		mode = how.mode;
		resolve = how.resolve;
	} else if (f.sc == LANNER_SC_OPEN_BY_HANDLE_AT) {
		// No name: the file is named by a handle; userspace reads the path of the returned fd.
		dirfd = (__s32)f.a[0];
		flags = f.a[2];
	} else {
		dirfd = (__s32)f.a[0];
		name_ptr = f.a[1];
		flags = f.a[2];
		mode = f.a[3];
	}
	__u32 zero = 0;
	struct kf_scratch *ks = kf_scratch_map.lookup(&zero);
	if (!ks)
		return 0;
	ks->args.name_ptr = name_ptr;
	ks->args.resolve = resolve;
	ks->args.res = res;
	ks->args.sc = f.sc;
	ks->args.dirfd = dirfd;
	ks->args.flags = flags;
	ks->args.mode = mode;
	// The filter is one program for every open syscall (verified once, not once per syscall); without it (not
	// installed yet) the open is reported unfiltered.
	kf_prog.call(args, 0);
	return open_emit(ks, 0);
}

// Writes the open record from the arguments in ks->args; the path comes from the filter's key when it was read
// there whole (kn), else from user memory.
static __always_inline int open_emit(struct kf_scratch *ks, int kn)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (LANNER_REGS_ARGS && is_excluded(id >> 32))
		return 0;
	struct lanner_hdr *h = begin(LANNER_MSG_OPEN, id);
	if (!h)
		return 0;
	struct lanner_open *o = (struct lanner_open *)(h + 1);
	char *name = (char *)(o + 1);
	__u64 name_ptr = ks->args.name_ptr;
	o->res = ks->args.res;
	o->sc = ks->args.sc;
	o->resolve = ks->args.resolve;
	o->dirfd = ks->args.dirfd;
	o->flags = ks->args.flags;
	o->mode = ks->args.mode;
	o->_pad[0] = o->_pad[1] = o->_pad[2] = 0;
	int n = 0;
	if (kn > 0 && kn < KF_PATH_KEY)
		n = bpf_probe_read_kernel(name, CLAMP(kn, KF_PATH_KEY - 1), ks->key.s) == 0 ? kn : 0;
	else if (name_ptr)
		n = bpf_probe_read_user_str(name, LANNER_PATH_MAX, (const char *)name_ptr);
	__u32 len = n > 0 ? n : 0;
	len = CLAMP(len, LANNER_PATH_MAX);
	o->name_len = len;
	submit(h, sizeof(*h) + sizeof(*o) + CLAMP(len, LANNER_PATH_MAX));
	return 0;
}

// The tail of every open exit (installed in kf_prog by userspace): read the path, apply the filter, emit or drop.
int kf_open_filter(void *args)
{
	__u32 zero = 0;
	struct kf_scratch *ks = kf_scratch_map.lookup(&zero);
	if (!ks)
		return 0;
	__u64 name_ptr = ks->args.name_ptr;
	__s64 res = ks->args.res;
	struct kf_sc *mode = kf_mode(ks->args.sc);
	struct kf_conf *conf = mode ? kf_conf.lookup(&zero) : NULL;
	__u64 yes = 0, no = 0, need = ~0ULL;
	ks->num_done = 0;
	__u64 gen = 0;
	ks->have_path = 0;
	if (conf) {
		gen = kf_gen_now();
		struct kf_memo *memo = kf_memo.lookup(&zero);
		// The operands are loaded again (volatile): what the comparisons teach the verifier about them must not
		// split the rest of the program into as many states as there are ways through here.
		volatile struct kf_scratch *vk = ks;
		__u64 vptr = vk->args.name_ptr;
		if (memo && memo->gen == kf_gen_now() && memo->res == vk->args.res && memo->sc == vk->args.sc &&
		    memo->flags == vk->args.flags && vptr) {
			int n = bpf_probe_read_user_str(ks->key.s, KF_PATH_KEY, (const char *)vptr);
			if (kf_memo_same(memo, ks->key.s, n)) {
				kf_count(1, ks->args.sc & (KF_SLOTS - 1));
				kf_mark_stale(res);
				return 0;
			}
			ks->kn = n;
			ks->have_path = 1;
		}
		// The flags and the result first: when they make every clause false, the path is not read at all, and
		// otherwise only the path atoms some live clause reads are looked up.
		kf_num_bits(conf, ks->args.flags, res, -1, &yes, &no);
		ks->num_done = 1;
		if (!kf_any_clause(ks->args.sc & (KF_SLOTS - 1), mode->n, yes, no, &need)) {
			kf_count(1, ks->args.sc & (KF_SLOTS - 1));
			kf_mark_stale(res);
			return 0;
		}
	}
	// Not zero-filled first: the scan stops at the string's NUL, the tries read only `prefixlen` bits, the exact key
	// is built apart (kf_path_bits), and a failed read leaves the buffer zeroed by the helper.
	// Read back through volatile loads: both ways here reach what follows as one verifier state.
	int kn = 0;
	if (*(volatile __u32 *)&ks->have_path)
		kn = *(volatile __s32 *)&ks->kn;
	else if (name_ptr)
		kn = bpf_probe_read_user_str(ks->key.s, KF_PATH_KEY, (const char *)name_ptr);
	else
		ks->key.s[0] = 0;
	if (!mode)
		return open_emit(ks, kn);
	kf_path_bits(ks, kn, 0, 1, need, &yes, &no);
	// Most opens are decided here, by their path: the decision program (the comm, then the counters and the emit)
	// is reached only by an open that some clause may still want.
	if (conf && !kf_any_clause(ks->args.sc & (KF_SLOTS - 1), mode->n, yes, no, &need)) {
		kf_count(1, ks->args.sc & (KF_SLOTS - 1));
		kf_mark_stale(res);
		struct kf_memo *memo = kf_memo.lookup(&zero);
		if (memo && kn > 0 && kn <= KF_MEMO_PATH) {
			memo->gen = gen;
			memo->res = res;
			memo->sc = ks->args.sc;
			memo->flags = ks->args.flags;
			memo->kn = kn;
			bpf_probe_read_kernel(memo->s, CLAMP(kn, KF_MEMO_PATH), ks->key.s);
		}
		return 0;
	}
	ks->yes = yes;
	ks->no = no;
	ks->res = res;
	ks->stale = res;
	ks->sc = ks->args.sc;
	ks->flags = ks->args.flags;
	ks->family = -1;
	ks->sport = -1;
	ks->open = 1;
	ks->kn = kn;
	kf_prog.call(args, 2);
	return open_emit(ks, kn);
}

TRACEPOINT_PROBE(syscalls, sys_exit_open)
{
	return open_exit(args, LANNER_SC_OPEN);
}
TRACEPOINT_PROBE(syscalls, sys_exit_openat)
{
	return open_exit(args, LANNER_SC_OPENAT);
}
TRACEPOINT_PROBE(syscalls, sys_exit_openat2)
{
	return open_exit(args, LANNER_SC_OPENAT2);
}
TRACEPOINT_PROBE(syscalls, sys_exit_creat)
{
	return open_exit(args, LANNER_SC_CREAT);
}
TRACEPOINT_PROBE(syscalls, sys_exit_open_by_handle_at)
{
	return open_exit(args, LANNER_SC_OPEN_BY_HANDLE_AT);
}

// dup* give a copy of an fd a new number; the rule on shells redirecting stdio to a socket needs them.
GENERIC_PROBE(dup, LANNER_SC_DUP, 1)
GENERIC_PROBE(dup2, LANNER_SC_DUP2, 2)
GENERIC_PROBE(dup3, LANNER_SC_DUP3, 3)
#endif

/* ---------------------------------------------------------------- network */

#if LANNER_FAM_NET
ENTER_PROBE(socket)
{
	return stash(args, LANNER_SC_SOCKET, 3);
}
TRACEPOINT_PROBE(syscalls, sys_exit_socket)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct inflight f = {};
	if (!take((__u32)id, &f))
		return 0;
	struct lanner_hdr *h = begin(LANNER_MSG_SOCKET, id);
	if (!h)
		return 0;
	struct lanner_socket *s = (struct lanner_socket *)(h + 1);
	s->res = SC_RET();
	s->sc = LANNER_SC_SOCKET;
	s->domain = f.a[0];
	s->type = f.a[1];
	s->protocol = f.a[2];
	if (s->res >= 0) {
		// The number may have been a raw socket's before: the mark follows the fd now holding it.
		__u64 k = kf_fd_key(s->res);
		__u8 one = 1;
		if ((f.a[1] & 0xF) == 3)
			kf_rawsk.update(&k, &one);
		else
			kf_rawsk.delete(&k);
	}
	submit_filtered(args, h, sizeof(*h) + sizeof(*s));
	return 0;
}

ENTER_PROBE(connect)
{
	return stash(args, LANNER_SC_CONNECT, 3);
}
ENTER_PROBE(accept)
{
	return stash(args, LANNER_SC_ACCEPT, 3);
}
ENTER_PROBE(accept4)
{
	return stash(args, LANNER_SC_ACCEPT4, 4);
}

static __always_inline int sock_exit(void *args, __u32 type)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct inflight f = {};
	if (!take((__u32)id, &f))
		return 0;
	struct lanner_hdr *h = begin(type, id);
	if (!h)
		return 0;
	struct lanner_sock *s = (struct lanner_sock *)(h + 1);
	__s64 ret = SC_RET();
	s->res = ret;
	s->sc = f.sc;
	s->fd = (__s32)f.a[0];
	s->flags = f.sc == LANNER_SC_ACCEPT4 ? (__u32)f.a[3] : 0;
	__u32 len = 0;
	if (f.sc == LANNER_SC_SENDTO || f.sc == LANNER_SC_SENDMSG)
		s->flags = (__u32)f.a[3];
	if (f.sc == LANNER_SC_CONNECT || f.sc == LANNER_SC_SENDTO || f.sc == LANNER_SC_SENDMSG) {
		len = (__u32)f.a[2];
	} else if (ret >= 0 && f.a[1] && f.a[2]) {
		int ulen = 0;
		bpf_probe_read_user(&ulen, sizeof(ulen), (const void *)f.a[2]);
		len = ulen > 0 ? ulen : 0;
	}
	len = CLAMP(len, LANNER_SOCKADDR_MAX);
	if (!f.a[1] || (len > 0 && bpf_probe_read_user(s->addr, CLAMP(len, LANNER_SOCKADDR_MAX), (const void *)f.a[1]) != 0))
		len = 0;
	s->addr_len = len;
	if (type == LANNER_MSG_ACCEPT && ret >= 0) {
		__u64 k = kf_fd_key(ret);
		kf_rawsk.delete(&k);
	}
	submit_filtered(args, h, sizeof(*h) + sizeof(*s));
	return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_connect)
{
	return sock_exit(args, LANNER_MSG_CONNECT);
}
TRACEPOINT_PROBE(syscalls, sys_exit_accept)
{
	return sock_exit(args, LANNER_MSG_ACCEPT);
}
TRACEPOINT_PROBE(syscalls, sys_exit_accept4)
{
	return sock_exit(args, LANNER_MSG_ACCEPT);
}

GENERIC_PROBE(listen, LANNER_SC_LISTEN, 2)

// Only sends that name a destination are traced: on a connected socket the peer is already known from connect, and
// tracing every send would multiply the event volume. Slots: a[0] fd, a[1] sockaddr, a[2] its length, a[3] size.
static __always_inline int stash_send(__u32 sc, __u64 fd, __u64 addr, __u64 addrlen, __u64 size)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	if (!addr || is_excluded(id >> 32))
		return 0;
	struct inflight f = {};
	f.sc = sc;
	f.a[0] = fd;
	f.a[1] = addr;
	f.a[2] = addrlen;
	f.a[3] = size;
	inflight.update(&tid, &f);
	return 0;
}

ENTER_PROBE(sendto)
{
	return stash_send(LANNER_SC_SENDTO, SC_ARG(0), SC_ARG(4), SC_ARG(5), SC_ARG(2));
}
ENTER_PROBE(sendmsg)
{
	// struct user_msghdr starts with msg_name and msg_namelen.
	struct {
		__u64 name;
		__s32 namelen;
	} mh = {};
	if (bpf_probe_read_user(&mh, sizeof(mh), (const void *)SC_ARG(1)) != 0)
		return 0;
	return stash_send(LANNER_SC_SENDMSG, SC_ARG(0), mh.name, mh.namelen > 0 ? mh.namelen : 0, 0);
}
TRACEPOINT_PROBE(syscalls, sys_exit_sendto)
{
	return sock_exit(args, LANNER_MSG_SEND);
}
TRACEPOINT_PROBE(syscalls, sys_exit_sendmsg)
{
	return sock_exit(args, LANNER_MSG_SEND);
}
#endif

/* ---------------------------------------------------------------- unlink / rename / mkdir / chdir */

#if LANNER_FAM_FILEOP
ENTER_PROBE(unlink)
{
	return stash(args, LANNER_SC_UNLINK, 1);
}
ENTER_PROBE(unlinkat)
{
	return stash(args, LANNER_SC_UNLINKAT, 3);
}
ENTER_PROBE(rename)
{
	return stash(args, LANNER_SC_RENAME, 2);
}
ENTER_PROBE(renameat)
{
	return stash(args, LANNER_SC_RENAMEAT, 4);
}
ENTER_PROBE(renameat2)
{
	return stash(args, LANNER_SC_RENAMEAT2, 5);
}
ENTER_PROBE(mkdir)
{
	return stash(args, LANNER_SC_MKDIR, 2);
}
ENTER_PROBE(mkdirat)
{
	return stash(args, LANNER_SC_MKDIRAT, 3);
}
ENTER_PROBE(rmdir)
{
	return stash(args, LANNER_SC_RMDIR, 1);
}
ENTER_PROBE(chdir)
{
	return stash(args, LANNER_SC_CHDIR, 1);
}
ENTER_PROBE(fchdir)
{
	return stash(args, LANNER_SC_FCHDIR, 1);
}
ENTER_PROBE(chmod)
{
	return stash(args, LANNER_SC_CHMOD, 2);
}
ENTER_PROBE(fchmod)
{
	return stash(args, LANNER_SC_FCHMOD, 2);
}
ENTER_PROBE(fchmodat)
{
	return stash(args, LANNER_SC_FCHMODAT, 3);
}
ENTER_PROBE(symlink)
{
	return stash(args, LANNER_SC_SYMLINK, 2);
}
ENTER_PROBE(symlinkat)
{
	return stash(args, LANNER_SC_SYMLINKAT, 3);
}
ENTER_PROBE(link)
{
	return stash(args, LANNER_SC_LINK, 2);
}
ENTER_PROBE(linkat)
{
	return stash(args, LANNER_SC_LINKAT, 5);
}

static __always_inline int fileop_exit(void *args)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct inflight f = {};
	if (!take((__u32)id, &f))
		return 0;
	struct lanner_hdr *h = begin(LANNER_MSG_FILEOP, id);
	if (!h)
		return 0;
	struct lanner_fileop *o = (struct lanner_fileop *)(h + 1);
	char *tail = (char *)(o + 1);
	__u64 p1 = 0, p2 = 0;
	o->res = SC_RET();
	o->sc = f.sc;
	o->dirfd1 = AT_FDCWD_VAL;
	o->dirfd2 = AT_FDCWD_VAL;
	o->flags = 0;
	o->mode = 0;
	switch (f.sc) {
	case LANNER_SC_UNLINK:
	case LANNER_SC_RMDIR:
	case LANNER_SC_CHDIR:
		p1 = f.a[0];
		break;
	case LANNER_SC_FCHDIR:
		o->dirfd1 = (__s32)f.a[0];
		break;
	case LANNER_SC_UNLINKAT:
		o->dirfd1 = (__s32)f.a[0];
		p1 = f.a[1];
		o->flags = f.a[2];
		break;
	case LANNER_SC_RENAME:
		p1 = f.a[0];
		p2 = f.a[1];
		break;
	case LANNER_SC_RENAMEAT:
	case LANNER_SC_RENAMEAT2:
		o->dirfd1 = (__s32)f.a[0];
		p1 = f.a[1];
		o->dirfd2 = (__s32)f.a[2];
		p2 = f.a[3];
		o->flags = f.sc == LANNER_SC_RENAMEAT2 ? (__u32)f.a[4] : 0;
		break;
	case LANNER_SC_MKDIR:
		p1 = f.a[0];
		o->mode = f.a[1];
		break;
	case LANNER_SC_MKDIRAT:
	case LANNER_SC_FCHMODAT:
		o->dirfd1 = (__s32)f.a[0];
		p1 = f.a[1];
		o->mode = f.a[2];
		break;
	case LANNER_SC_CHMOD:
		p1 = f.a[0];
		o->mode = f.a[1];
		break;
	case LANNER_SC_FCHMOD:
		o->dirfd1 = (__s32)f.a[0];
		o->mode = f.a[1];
		break;
	case LANNER_SC_SYMLINK:
	case LANNER_SC_LINK:
		p1 = f.a[0];
		p2 = f.a[1];
		break;
	case LANNER_SC_SYMLINKAT:
		p1 = f.a[0];
		o->dirfd2 = (__s32)f.a[1];
		p2 = f.a[2];
		break;
	case LANNER_SC_LINKAT:
		o->dirfd1 = (__s32)f.a[0];
		p1 = f.a[1];
		o->dirfd2 = (__s32)f.a[2];
		p2 = f.a[3];
		o->flags = f.a[4];
		break;
	}
	__u32 l1 = 0, l2 = 0;
	if (p1) {
		int n = bpf_probe_read_user_str(tail, LANNER_PATH_MAX, (const char *)p1);
		l1 = n > 0 ? n : 0;
	}
	l1 = CLAMP(l1, LANNER_PATH_MAX);
	if (p2) {
		int n = bpf_probe_read_user_str(tail + CLAMP(l1, LANNER_PATH_MAX), LANNER_PATH_MAX, (const char *)p2);
		l2 = n > 0 ? n : 0;
	}
	l2 = CLAMP(l2, LANNER_PATH_MAX);
	o->path1_len = l1;
	o->path2_len = l2;
	submit_filtered(args, h, sizeof(*h) + sizeof(*o) + CLAMP(l1, LANNER_PATH_MAX) + CLAMP(l2, LANNER_PATH_MAX));
	return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_unlink)
{
	return fileop_exit(args);
}
TRACEPOINT_PROBE(syscalls, sys_exit_unlinkat)
{
	return fileop_exit(args);
}
TRACEPOINT_PROBE(syscalls, sys_exit_rename)
{
	return fileop_exit(args);
}
TRACEPOINT_PROBE(syscalls, sys_exit_renameat)
{
	return fileop_exit(args);
}
TRACEPOINT_PROBE(syscalls, sys_exit_renameat2)
{
	return fileop_exit(args);
}
TRACEPOINT_PROBE(syscalls, sys_exit_mkdir)
{
	return fileop_exit(args);
}
TRACEPOINT_PROBE(syscalls, sys_exit_mkdirat)
{
	return fileop_exit(args);
}
TRACEPOINT_PROBE(syscalls, sys_exit_rmdir)
{
	return fileop_exit(args);
}
TRACEPOINT_PROBE(syscalls, sys_exit_chdir)
{
	return fileop_exit(args);
}
TRACEPOINT_PROBE(syscalls, sys_exit_fchdir)
{
	return fileop_exit(args);
}
TRACEPOINT_PROBE(syscalls, sys_exit_chmod)
{
	return fileop_exit(args);
}
TRACEPOINT_PROBE(syscalls, sys_exit_fchmod)
{
	return fileop_exit(args);
}
TRACEPOINT_PROBE(syscalls, sys_exit_fchmodat)
{
	return fileop_exit(args);
}
TRACEPOINT_PROBE(syscalls, sys_exit_symlink)
{
	return fileop_exit(args);
}
TRACEPOINT_PROBE(syscalls, sys_exit_symlinkat)
{
	return fileop_exit(args);
}
TRACEPOINT_PROBE(syscalls, sys_exit_link)
{
	return fileop_exit(args);
}
TRACEPOINT_PROBE(syscalls, sys_exit_linkat)
{
	return fileop_exit(args);
}
#endif

/* ---------------------------------------------------------------- privilege and namespace changes */

#if LANNER_FAM_PRIV
GENERIC_PROBE(setuid, LANNER_SC_SETUID, 1)
GENERIC_PROBE(setgid, LANNER_SC_SETGID, 1)
GENERIC_PROBE(setreuid, LANNER_SC_SETREUID, 2)
GENERIC_PROBE(setregid, LANNER_SC_SETREGID, 2)
GENERIC_PROBE(setresuid, LANNER_SC_SETRESUID, 3)
GENERIC_PROBE(setresgid, LANNER_SC_SETRESGID, 3)
GENERIC_PROBE(ptrace, LANNER_SC_PTRACE, 4)
GENERIC_PROBE(unshare, LANNER_SC_UNSHARE, 1)
GENERIC_PROBE(setns, LANNER_SC_SETNS, 2)
GENERIC_PROBE(bpf, LANNER_SC_BPF, 1)
GENERIC_PROBE(prctl, LANNER_SC_PRCTL, 2)
#endif

#if LANNER_FAM_NET || LANNER_FAM_FILEOP
// Reads a string of the record at `p` into the filter's key; what bpf_probe_read_kernel_str returned.
static __always_inline int kf_key_from(struct kf_scratch *ks, const char *p, __u32 len)
{
	__builtin_memset(ks->key.s, 0, sizeof(ks->key.s));
	if (!len)
		return 0;
	return bpf_probe_read_kernel_str(ks->key.s, KF_PATH_KEY, p);
}

// The tail of the socket and file-operation exits (installed in kf_prog by userspace): the record is complete in
// the scratch buffer; apply the filter to it, then submit or drop it.
int kf_rec_filter(void *args)
{
	__u32 zero = 0;
	struct scratch *s = scratch.lookup(&zero);
	if (!s)
		return 0;
	struct lanner_hdr *h = (struct lanner_hdr *)s->buf;
	__u64 size = h->size;
	__u32 type = h->type;
	__u32 sc = 0;
	__s64 res = 0;
	__s32 family = -1, sport = -1;
	__s64 stale = -1;
	__u64 yes = 0, no = 0;
	if (type == LANNER_MSG_SOCKET) {
		struct lanner_socket *so = (struct lanner_socket *)(h + 1);
		sc = so->sc;
		res = so->res;
		family = so->domain < 64 ? so->domain : -1;
		stale = res;
	} else if (type == LANNER_MSG_CONNECT || type == LANNER_MSG_ACCEPT || type == LANNER_MSG_SEND) {
		struct lanner_sock *so = (struct lanner_sock *)(h + 1);
		sc = so->sc;
		res = so->res;
		stale = type == LANNER_MSG_ACCEPT ? res : so->fd;
		__u32 alen = so->addr_len;
		if (alen >= 2) {
			__u16 fam = so->addr[0] | (so->addr[1] << 8);
			__u64 k = kf_fd_key(so->fd);
			// A raw socket keeps its IP type whatever a connect or send names (not so an accepted one).
			if (fam < 64 && (type == LANNER_MSG_ACCEPT || !kf_rawsk.lookup(&k)))
				family = fam;
			if (type != LANNER_MSG_ACCEPT && ((fam == 2 && alen >= 8) || (fam == 10 && alen >= 24)))
				sport = (so->addr[2] << 8) | so->addr[3];
		}
	} else if (type == LANNER_MSG_FILEOP) {
		struct lanner_fileop *o = (struct lanner_fileop *)(h + 1);
		sc = o->sc;
		res = o->res;
	} else {
		submit(h, size);
		return 0;
	}
	if (!kf_mode(sc)) {
		submit(h, size);
		return 0;
	}
	struct kf_scratch *ks = kf_scratch_map.lookup(&zero);
	if (!ks) {
		submit(h, size);
		return 0;
	}
	if (type == LANNER_MSG_FILEOP) {
		struct lanner_fileop *o = (struct lanner_fileop *)(h + 1);
		const char *tail = (const char *)(o + 1);
		__u32 l1 = CLAMP(o->path1_len, LANNER_PATH_MAX);
		__u32 l2 = o->path2_len;
		int kn = kf_key_from(ks, tail, l1);
		kf_path_bits(ks, kn, 1, 0, ~0ULL, &yes, &no);
		kn = kf_key_from(ks, tail + l1, l2);
		kf_path_bits(ks, kn, 2, 0, ~0ULL, &yes, &no);
		stale = -1; /* a file operation changes no fd */
	}
	ks->yes = yes;
	ks->no = no;
	ks->res = res;
	ks->stale = stale;
	ks->sc = sc;
	ks->flags = 0;
	ks->family = family;
	ks->sport = sport;
	ks->open = 0;
	ks->kn = 0;
	ks->num_done = 0;
	kf_prog.call(args, 2);
	submit(h, size);
	return 0;
}
#endif

// The decision, one program for every filtered syscall (installed in kf_prog by userspace): the path programs leave
// what they found in the filter's scratch; emit or submit the event, or count and drop it.
int kf_decide_prog(void *args)
{
	__u32 zero = 0;
	struct kf_scratch *ks = kf_scratch_map.lookup(&zero);
	if (!ks)
		return 0;
	volatile struct kf_scratch *v = ks;
	__u32 sc = v->sc;
	__u32 slot = sc & (KF_SLOTS - 1);
	struct kf_sc *mode = kf_sc.lookup(&slot);
	int pass = 1;
	if (mode && mode->mode)
		pass = kf_decide(sc, mode, v->yes, v->no, v->flags, v->res, v->family, v->sport, v->num_done);
	if (!pass)
		kf_mark_stale(v->stale);
#if LANNER_FAM_OPEN
	if (v->open) {
		__s32 kn = v->kn;
		return pass ? open_emit(ks, kn) : 0;
	}
#endif
	if (pass) {
		struct scratch *s = scratch.lookup(&zero);
		if (s) {
			struct lanner_hdr *h = (struct lanner_hdr *)s->buf;
			submit(h, h->size);
		}
	}
	return 0;
}

/* ---------------------------------------------------------------- fd lifecycle: close, pipe, eventfd, fcntl dup */
// The fd table in userspace must know when an fd number stops naming what it learnt: every close stamps
// (tgid, fd) in fd_closed, and a table entry made before a close that precedes the event is not trusted
// (collector/fdclose.py). Close
// records themselves go to userspace only when a rule wants the close event (fdx_conf bit 1): closes are as
// frequent as opens.

#if LANNER_FAM_OPEN
#define FDX_EMIT_CLOSE 1
// fdx_conf bit: closes are stamped by the raw sys_enter probe (attached anyway for module loads), and the perf
// tracepoint sys_enter_close is detached: it would cost a second probe, with its record, on every close.
#define FDX_STAMP_RAW 4
BPF_ARRAY(fdx_conf, __u32, 1);
// The last four closes of each (tgid, fd): userspace decodes records a little after the fact, so one timestamp
// would already hold a later close than the event it judges.
#define FD_CLOSE_SLOTS 4
struct fd_closes {
	__u64 ts[FD_CLOSE_SLOTS];
	__u64 n;    /* closes stamped; slot n % FD_CLOSE_SLOTS is the next to write */
	__u64 done; /* the record count (rec_done) when the last stamp was written */
};
BPF_TABLE("lru_hash", __u64, struct fd_closes, fd_closed, 65536);

// Inode number of the file behind the current task's fd (pipefs / sockfs inode), 0 when it cannot be read.
static __always_inline __u64 fd_ino(__s32 fd)
{
	__u64 ino = 0;
#if LANNER_BTF
#if K_TASK_FILES >= 0 && K_FILES_FDT >= 0 && K_FDT_FD >= 0 && K_FDT_MAX_FDS >= 0
	const char *task = (const char *)bpf_get_current_task();
	const char *files = NULL, *fdt = NULL, *arr = NULL, *file = NULL, *inode = NULL;
	__u32 max = 0;
	if (fd < 0)
		return 0;
	KREAD(files, task, K_TASK_FILES);
	if (files)
		KREAD(fdt, files, K_FILES_FDT);
	if (!fdt)
		return 0;
	KREAD(max, fdt, K_FDT_MAX_FDS);
	if ((__u32)fd >= max)
		return 0;
	KREAD(arr, fdt, K_FDT_FD);
	if (arr)
		KREAD(file, arr, 8 * (__u64)(__u32)fd);
	if (file)
		KREAD(inode, file, K_FILE_INODE);
	if (inode)
		KREAD(ino, inode, K_INODE_INO);
#endif
#endif
	return ino;
}

// Stamps a close of `fd` by the current process.
static __always_inline void fd_close_stamp(__u32 fd)
{
	__u64 k = (bpf_get_current_pid_tgid() & 0xFFFFFFFF00000000ULL) | fd;
	if (mark_cached(MARK_CLOSE, k))
		return;
	__u64 ins = mark_inserts_now();
	struct fd_closes *c = fd_closed.lookup(&k);
	// No record stamped since the last close of this fd: that stamp stands for this close too (rec_seq).
	if (c && rec_unchanged(c->done)) {
		mark_cache_set(MARK_CLOSE, k, c->done, ins);
		return;
	}
	__u64 done = rec_done();
	__u64 ts = bpf_ktime_get_boot_ns();
	if (c) {
		c->ts[c->n & (FD_CLOSE_SLOTS - 1)] = ts;
		c->n++;
		c->done = done;
	} else {
		struct fd_closes first = {};
		first.ts[0] = ts;
		first.n = 1;
		first.done = done;
		mark_inserted();
		if (fd_closed.update(&k, &first) != 0)
			return;
	}
	mark_cache_set(MARK_CLOSE, k, done, ins);
}

ENTER_PROBE(close)
{
	fd_close_stamp((__u32)SC_ARG(0));
	__u32 zero = 0;
	__u32 *conf = fdx_conf.lookup(&zero);
	if (conf && (*conf & FDX_EMIT_CLOSE))
		return stash(args, LANNER_SC_CLOSE, 1);
	return 0;
}
TRACEPOINT_PROBE(syscalls, sys_exit_close)
{
	return generic_exit(args);
}

GENERIC_PROBE(eventfd, LANNER_SC_EVENTFD, 1)
GENERIC_PROBE(eventfd2, LANNER_SC_EVENTFD2, 2)
GENERIC_PROBE(userfaultfd, LANNER_SC_USERFAULTFD, 1)

// fcntl is called constantly for F_GETFL/F_SETFD; only the commands that make a new fd are reported.
ENTER_PROBE(fcntl)
{
	__u64 cmd = SC_ARG(1);
	if (cmd != 0 /* F_DUPFD */ && cmd != 1030 /* F_DUPFD_CLOEXEC */)
		return 0;
	return stash(args, LANNER_SC_FCNTL, 3);
}
TRACEPOINT_PROBE(syscalls, sys_exit_fcntl)
{
	return generic_exit(args);
}

static __always_inline int fdpair_exit(void *args)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct inflight f = {};
	if (!take((__u32)id, &f))
		return 0;
	struct lanner_hdr *h = begin(LANNER_MSG_FDPAIR, id);
	if (!h)
		return 0;
	struct lanner_fdpair *p = (struct lanner_fdpair *)(h + 1);
	__s64 ret = SC_RET();
	__s32 fds[2] = {-1, -1};
	__u64 ptr = f.sc == LANNER_SC_SOCKETPAIR ? f.a[3] : f.a[0];
	if (ret == 0 && bpf_probe_read_user(fds, sizeof(fds), (const void *)ptr) != 0) {
		fds[0] = -1;
		fds[1] = -1;
	}
	p->res = ret;
	p->sc = f.sc;
	p->fd1 = fds[0];
	p->fd2 = fds[1];
	p->flags = f.sc == LANNER_SC_PIPE2 ? (__u32)f.a[1] : 0;
	p->domain = f.sc == LANNER_SC_SOCKETPAIR ? (__u32)f.a[0] : 0;
	p->type = f.sc == LANNER_SC_SOCKETPAIR ? (__u32)f.a[1] : 0;
	p->protocol = f.sc == LANNER_SC_SOCKETPAIR ? (__u32)f.a[2] : 0;
	p->_pad = 0;
	p->ino1 = ret == 0 ? fd_ino(fds[0]) : 0;
	p->ino2 = ret == 0 ? fd_ino(fds[1]) : 0;
	submit(h, sizeof(*h) + sizeof(*p));
	return 0;
}

ENTER_PROBE(pipe)
{
	return stash(args, LANNER_SC_PIPE, 1);
}
TRACEPOINT_PROBE(syscalls, sys_exit_pipe)
{
	return fdpair_exit(args);
}
ENTER_PROBE(pipe2)
{
	return stash(args, LANNER_SC_PIPE2, 2);
}
TRACEPOINT_PROBE(syscalls, sys_exit_pipe2)
{
	return fdpair_exit(args);
}
#if LANNER_FAM_NET
ENTER_PROBE(socketpair)
{
	return stash(args, LANNER_SC_SOCKETPAIR, 4);
}
TRACEPOINT_PROBE(syscalls, sys_exit_socketpair)
{
	return fdpair_exit(args);
}
#endif
#endif

/* ---------------------------------------------------------------- receive with the sender's address */

#if LANNER_FAM_NET
// Receives are frequent (every read of a socket through recv*): unless a rule wants the receive events themselves
// (fdx_conf bit 2), only those that return a sender's address are reported.
#define FDX_EMIT_RECV 2
BPF_ARRAY(fdx_recv_conf, __u32, 1);

static __always_inline int recv_all(void)
{
	__u32 zero = 0;
	__u32 *conf = fdx_recv_conf.lookup(&zero);
	return conf && (*conf & FDX_EMIT_RECV);
}

// Slots: a[0] fd, a[1] recvfrom's src_addr or recvmsg's msghdr, a[2] recvfrom's addrlen pointer, a[3] size.
ENTER_PROBE(recvfrom)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	if (!SC_ARG(4) && !recv_all())
		return 0;
	if (is_excluded(id >> 32))
		return 0;
	struct inflight f = {};
	f.sc = LANNER_SC_RECVFROM;
	f.a[0] = SC_ARG(0);
	f.a[1] = SC_ARG(4);
	f.a[2] = SC_ARG(5);
	f.a[3] = SC_ARG(2);
	inflight.update(&tid, &f);
	return 0;
}
ENTER_PROBE(recvmsg)
{
	return stash(args, LANNER_SC_RECVMSG, 3);
}

static __always_inline int recv_exit(void *args)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct inflight f = {};
	if (!take((__u32)id, &f))
		return 0;
	struct lanner_hdr *h = begin(LANNER_MSG_RECV, id);
	if (!h)
		return 0;
	struct lanner_sock *s = (struct lanner_sock *)(h + 1);
	__s64 ret = SC_RET();
	__u64 addr = 0;
	int len = 0;
	s->res = ret;
	s->sc = f.sc;
	s->fd = (__s32)f.a[0];
	s->flags = (__u32)f.a[3];
	if (f.sc == LANNER_SC_RECVFROM) {
		addr = f.a[1];
		if (ret >= 0 && addr && f.a[2])
			bpf_probe_read_user(&len, sizeof(len), (const void *)f.a[2]);
	} else if (ret >= 0 && f.a[1]) {
		// struct user_msghdr: msg_name, msg_namelen (updated by the kernel to the sender's address length).
		struct {
			__u64 name;
			__s32 namelen;
		} mh = {};
		if (bpf_probe_read_user(&mh, sizeof(mh), (const void *)f.a[1]) == 0) {
			addr = mh.name;
			len = mh.namelen;
		}
	}
	__u32 n = len > 0 ? len : 0;
	n = CLAMP(n, LANNER_SOCKADDR_MAX);
	if (!addr || (n > 0 && bpf_probe_read_user(s->addr, CLAMP(n, LANNER_SOCKADDR_MAX), (const void *)addr) != 0))
		n = 0;
	if (n == 0 && !recv_all())
		return 0;
	s->addr_len = n;
	submit(h, sizeof(*h) + sizeof(*s));
	return 0;
}
TRACEPOINT_PROBE(syscalls, sys_exit_recvfrom)
{
	return recv_exit(args);
}
TRACEPOINT_PROBE(syscalls, sys_exit_recvmsg)
{
	return recv_exit(args);
}
#endif

/* ---------------------------------------------------------------- mount, umount2, kernel modules */

// Writes a record of up to three user strings (0 pointers are left empty), flags and one number.
static __always_inline int strs_exit(__s64 ret, __u32 sc, __u64 p0, __u64 p1, __u64 p2, __u32 flags, __u64 n0)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct lanner_hdr *h = begin(LANNER_MSG_STRS, id);
	if (!h)
		return 0;
	struct lanner_strs *r = (struct lanner_strs *)(h + 1);
	char *tail = (char *)(r + 1);
	r->res = ret;
	r->sc = sc;
	r->flags = flags;
	r->num[0] = n0;
	r->num[1] = 0;
	r->_pad = 0;
	__u64 ptr[3] = {p0, p1, p2};
	__u32 off = 0;
#pragma unroll
	for (int i = 0; i < 3; i++) {
		int n = 0;
		if (ptr[i])
			n = bpf_probe_read_user_str(tail + CLAMP(off, 2 * LANNER_PATH_MAX), LANNER_PATH_MAX,
						    (const char *)ptr[i]);
		__u32 l = n > 0 ? n : 0;
		l = CLAMP(l, LANNER_PATH_MAX);
		r->len[i] = l;
		off += l;
	}
	submit(h, sizeof(*h) + sizeof(*r) + CLAMP(off, 3 * LANNER_PATH_MAX));
	return 0;
}

#if LANNER_FAM_FILEOP
ENTER_PROBE(mount)
{
	return stash(args, LANNER_SC_MOUNT, 4);
}
TRACEPOINT_PROBE(syscalls, sys_exit_mount)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct inflight f = {};
	if (!take((__u32)id, &f))
		return 0;
	// mount(dev, dir, type, flags, data); the legacy magic in the high half of flags is not a flag.
	__u32 flags = (__u32)f.a[3];
	if ((flags & 0xFFFF0000) == 0xC0ED0000)
		flags &= 0xFFFF;
	return strs_exit(SC_RET(), f.sc, f.a[0], f.a[1], f.a[2], flags, 0);
}
// umount2's tracepoints are named after the kernel's sys_umount.
ENTER_PROBE(umount)
{
	return stash(args, LANNER_SC_UMOUNT2, 2);
}
TRACEPOINT_PROBE(syscalls, sys_exit_umount)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct inflight f = {};
	if (!take((__u32)id, &f))
		return 0;
	return strs_exit(SC_RET(), f.sc, f.a[0], 0, 0, (__u32)f.a[1], 0);
}
#endif

#if LANNER_FAM_PRIV
// init_module(image, len, uargs); finit_module(fd, uargs, flags). Slots a[0..2] hold those arguments.
static __always_inline int module_record(__s64 ret, struct inflight *f)
{
	if (f->sc == LANNER_SC_INIT_MODULE)
		return strs_exit(ret, f->sc, f->a[2], 0, 0, 0, f->a[1]);
	return strs_exit(ret, f->sc, f->a[1], 0, 0, (__u32)f->a[2], f->a[0]);
}

#if LANNER_MODULE_TPS
// A kernel with module support has tracepoints of its own for both calls.
ENTER_PROBE(init_module)
{
	return stash(args, LANNER_SC_INIT_MODULE, 3);
}
ENTER_PROBE(finit_module)
{
	return stash(args, LANNER_SC_FINIT_MODULE, 3);
}
static __always_inline int module_exit(void *args)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct inflight f = {};
	if (!take((__u32)id, &f))
		return 0;
	return module_record(SC_RET(), &f);
}
TRACEPOINT_PROBE(syscalls, sys_exit_init_module)
{
	return module_exit(args);
}
TRACEPOINT_PROBE(syscalls, sys_exit_finit_module)
{
	return module_exit(args);
}
#elif !LANNER_RAW_ENTER
// A kernel built without module support has no init_module/finit_module tracepoints, yet the calls can be made: they
// go to sys_ni_syscall, which fails with ENOSYS and nothing else. They are caught on the raw sys_enter tracepoint,
// which fires for every syscall, so it is kept to the least: a BPF raw tracepoint (called with the registers and the
// syscall number, without the record a perf tracepoint builds first), returning at the first comparisons for any other
// syscall; and since the result is known at entry the record is written there (no exit probe, which would cost as
// much again on every syscall). Userspace attaches it only when a rule wants a module event.
#ifndef LANNER_NR_INIT_MODULE
#define LANNER_NR_INIT_MODULE 175
#define LANNER_NR_FINIT_MODULE 313
#endif
#ifndef LANNER_NR32_INIT_MODULE
#define LANNER_NR32_INIT_MODULE -1
#define LANNER_NR32_FINIT_MODULE -1
#endif
#define K_ENOSYS 38
#define K_USER32_CS 0x23
#ifndef LANNER_NR_CLOSE
#define LANNER_NR_CLOSE -1
#endif
#ifndef LANNER_NR32_CLOSE
#define LANNER_NR32_CLOSE -1
#endif
#if LANNER_FAM_OPEN && LANNER_NR_CLOSE >= 0
// Present when this probe can stamp closes (userspace reads it to know it may move the stamps here).
BPF_ARRAY(fdx_raw_close, __u32, 1);
// A close seen on the raw tracepoint (`nr` is close's number in the 64-bit or the i386 table): stamped when userspace
// moved the stamps here (FDX_STAMP_RAW). Each number means another call in the other table (i386 3 is read, x86_64 6
// is lstat), so the task's code segment says which table it is.
static __always_inline int raw_close(struct bpf_raw_tracepoint_args *ctx, long nr)
{
	__u32 zero = 0;
	__u32 *conf = fdx_conf.lookup(&zero);
	if (!conf || !(*conf & FDX_STAMP_RAW))
		return 0;
	const struct pt_regs *regs = (const struct pt_regs *)ctx->args[0];
	__u64 fd = 0;
#if LANNER_NR32_CLOSE >= 0
	// di, orig_ax, ip and cs are adjacent in x86_64's pt_regs: one read for the first argument and the segment.
	_Static_assert(__builtin_offsetof(struct pt_regs, cs) == __builtin_offsetof(struct pt_regs, di) + 24,
		       "pt_regs: di .. cs");
	__u64 w[4] = {};
	bpf_probe_read_kernel(w, sizeof(w), &regs->di);
	int compat = (w[3] & 0xffff) == K_USER32_CS;
	if (compat != (nr == LANNER_NR32_CLOSE))
		return 0;
	if (compat)
		bpf_probe_read_kernel(&fd, sizeof(fd), &regs->bx);
	else
		fd = w[0];
#else
	bpf_probe_read_kernel(&fd, sizeof(fd), &PT_REGS_PARM1(regs));
#endif
	fd_close_stamp((__u32)fd);
	return 0;
}
#endif
RAW_TRACEPOINT_PROBE(sys_enter)
{
	long nr = ctx->args[1];
#if LANNER_FAM_OPEN && LANNER_NR_CLOSE >= 0
	if (nr == LANNER_NR_CLOSE || nr == LANNER_NR32_CLOSE)
		return raw_close(ctx, nr);
#endif
	if (nr != LANNER_NR_INIT_MODULE && nr != LANNER_NR_FINIT_MODULE && nr != LANNER_NR32_INIT_MODULE &&
	    nr != LANNER_NR32_FINIT_MODULE)
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	if (is_excluded(id >> 32))
		return 0;
	const struct pt_regs *regs = (const struct pt_regs *)ctx->args[0];
	struct inflight f = {};
#if LANNER_NR32_INIT_MODULE >= 0
	// The raw tracepoint also sees 32-bit tasks' syscalls, numbered by the i386 table (175 and 313 are other calls
	// there): their code segment tells them apart, and their arguments are in bx, cx, dx.
	__u64 cs = 0;
	bpf_probe_read_kernel(&cs, sizeof(cs), &regs->cs);
	if ((cs & 0xffff) == K_USER32_CS) {
		if (nr != LANNER_NR32_INIT_MODULE && nr != LANNER_NR32_FINIT_MODULE)
			return 0;
		f.sc = nr == LANNER_NR32_INIT_MODULE ? LANNER_SC_INIT_MODULE : LANNER_SC_FINIT_MODULE;
		bpf_probe_read_kernel(&f.a[0], sizeof(f.a[0]), &regs->bx);
		bpf_probe_read_kernel(&f.a[1], sizeof(f.a[1]), &regs->cx);
		bpf_probe_read_kernel(&f.a[2], sizeof(f.a[2]), &regs->dx);
		f.a[0] &= 0xFFFFFFFF;
		f.a[1] &= 0xFFFFFFFF;
		f.a[2] &= 0xFFFFFFFF;
		return module_record(-K_ENOSYS, &f);
	}
#endif
	if (nr != LANNER_NR_INIT_MODULE && nr != LANNER_NR_FINIT_MODULE)
		return 0;
	f.sc = nr == LANNER_NR_INIT_MODULE ? LANNER_SC_INIT_MODULE : LANNER_SC_FINIT_MODULE;
	bpf_probe_read_kernel(&f.a[0], sizeof(f.a[0]), &PT_REGS_PARM1(regs));
	bpf_probe_read_kernel(&f.a[1], sizeof(f.a[1]), &PT_REGS_PARM2(regs));
	bpf_probe_read_kernel(&f.a[2], sizeof(f.a[2]), &PT_REGS_PARM3(regs));
	return module_record(-K_ENOSYS, &f);
}
#endif
#endif

/* ---------------------------------------------------------------- every enter probe on the raw sys_enter tracepoint */
// With perf tracepoints, each syscalls:sys_enter_* attached makes the kernel run perf_syscall_enter on every syscall
// of the host (to look the number up in its bitmap), and beside the raw probe the sys_enter tracepoint iterates over
// two callbacks. Here one BPF raw tracepoint is the only sys_enter callback: it gets the registers and the syscall
// number, returns at once for a number no attached unit wants (raw_want, written by userspace: attaching a unit sets
// its bits, without touching a tracepoint), and calls the enter probe of the syscall with its arguments laid out as
// the tracepoint's record. The exits stay on syscalls:sys_exit_*, which ignore 32-bit tasks' syscalls on x86; so do
// the enter probes here, except the two that need no exit: the close stamp and module loads.
#if LANNER_RAW_ENTER
#define RAW_NRS 512
#define RAW_WANT64 1 /* the x86_64 syscall of this number is wanted */
#define RAW_WANT32 2 /* the i386 syscall of this number is wanted (a 32-bit task's) */
#define RAW_USER32_CS 0x23
#define RAW_ENOSYS 38
BPF_ARRAY(raw_want, __u32, RAW_NRS);
#if LANNER_FAM_PRIV && !LANNER_MODULE_TPS
// Present when module loads are caught here (userspace reads it to know they are compiled).
BPF_ARRAY(raw_modules, __u32, 1);
static __always_inline int raw_module(__u32 sc, __u64 a0, __u64 a1, __u64 a2)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (is_excluded(id >> 32))
		return 0;
	struct inflight f = {};
	f.sc = sc;
	f.a[0] = a0;
	f.a[1] = a1;
	f.a[2] = a2;
	// Without module support the call goes to sys_ni_syscall: its only result is -ENOSYS, so no exit probe.
	return module_record(-RAW_ENOSYS, &f);
}
#endif

// A 32-bit task's syscall (i386 numbers; arguments in bx, cx, dx).
static __always_inline int raw_enter32(__u64 nr, const struct pt_regs *r)
{
#if LANNER_FAM_OPEN
	if (nr == NR32_close) {
		fd_close_stamp((__u32)r->bx);
		return 0;
	}
#endif
#if LANNER_FAM_PRIV && !LANNER_MODULE_TPS
	if (nr == NR32_init_module || nr == NR32_finit_module)
		return raw_module(nr == NR32_init_module ? LANNER_SC_INIT_MODULE : LANNER_SC_FINIT_MODULE,
				  r->bx & 0xFFFFFFFF, r->cx & 0xFFFFFFFF, r->dx & 0xFFFFFFFF);
#endif
	return 0;
}

#define RAW_CASE(name)                                                                                             \
	case NR_##name:                                                                                            \
		return enter_##name(a);

RAW_TRACEPOINT_PROBE(sys_enter)
{
	__u64 nr = ctx->args[1];
	if (nr >= RAW_NRS)
		return 0;
	__u32 k = nr;
	__u32 *w = raw_want.lookup(&k);
	if (!w || !*w)
		return 0;
	const struct pt_regs *r = (const struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	// The two tables number syscalls differently: a 32-bit task's code segment tells which one `nr` is from.
	int compat = (r->cs & 0xffff) == RAW_USER32_CS;
	if (!(*w & (compat ? RAW_WANT32 : RAW_WANT64)))
		return 0;
	if (compat)
		return raw_enter32(nr, r);
	// The arguments where SC_ARG reads them in a syscalls:sys_enter_* record: 8-byte slots from offset 16.
	__u64 a[8];
	a[0] = 0;
	a[1] = nr;
	a[2] = r->di;
	a[3] = r->si;
	a[4] = r->dx;
	a[5] = r->r10;
	a[6] = r->r8;
	a[7] = r->r9;
	// One call site for both execs: their argument copies are the largest code here.
	if (nr == NR_execve || nr == NR_execveat) {
		int at = nr == NR_execveat;
		return exec_enter(a, at ? LANNER_SC_EXECVEAT : LANNER_SC_EXECVE, at ? a[3] : a[2], at ? a[4] : a[3],
				  at ? a[5] : a[4], at ? (__s32)a[2] : AT_FDCWD_VAL, at ? (__u32)a[6] : 0);
	}
#if LANNER_FAM_PRIV && !LANNER_MODULE_TPS
	if (nr == NR_init_module || nr == NR_finit_module)
		return raw_module(nr == NR_init_module ? LANNER_SC_INIT_MODULE : LANNER_SC_FINIT_MODULE, a[2], a[3],
				  a[4]);
#endif
	switch (nr) {
		RAW_CASE(clone)
		RAW_CASE(clone3)
		RAW_CASE(fork)
		RAW_CASE(vfork)
		RAW_CASE(exit)
		RAW_CASE(exit_group)
#if LANNER_FAM_OPEN
		RAW_CASE(dup)
		RAW_CASE(dup2)
		RAW_CASE(dup3)
		RAW_CASE(close)
		RAW_CASE(eventfd)
		RAW_CASE(eventfd2)
		RAW_CASE(userfaultfd)
		RAW_CASE(fcntl)
		RAW_CASE(pipe)
		RAW_CASE(pipe2)
#endif
#if LANNER_FAM_NET
		RAW_CASE(socket)
		RAW_CASE(connect)
		RAW_CASE(accept)
		RAW_CASE(accept4)
		RAW_CASE(listen)
		RAW_CASE(sendto)
		RAW_CASE(sendmsg)
		RAW_CASE(recvfrom)
		RAW_CASE(recvmsg)
#if LANNER_FAM_OPEN
		RAW_CASE(socketpair)
#endif
#endif
#if LANNER_FAM_FILEOP
		RAW_CASE(unlink)
		RAW_CASE(unlinkat)
		RAW_CASE(rename)
		RAW_CASE(renameat)
		RAW_CASE(renameat2)
		RAW_CASE(mkdir)
		RAW_CASE(mkdirat)
		RAW_CASE(rmdir)
		RAW_CASE(chdir)
		RAW_CASE(fchdir)
		RAW_CASE(chmod)
		RAW_CASE(fchmod)
		RAW_CASE(fchmodat)
		RAW_CASE(symlink)
		RAW_CASE(symlinkat)
		RAW_CASE(link)
		RAW_CASE(linkat)
		RAW_CASE(mount)
		RAW_CASE(umount)
#endif
#if LANNER_FAM_PRIV
		RAW_CASE(setuid)
		RAW_CASE(setgid)
		RAW_CASE(setreuid)
		RAW_CASE(setregid)
		RAW_CASE(setresuid)
		RAW_CASE(setresgid)
		RAW_CASE(ptrace)
		RAW_CASE(unshare)
		RAW_CASE(setns)
		RAW_CASE(bpf)
		RAW_CASE(prctl)
#if LANNER_MODULE_TPS
		RAW_CASE(init_module)
		RAW_CASE(finit_module)
#endif
#endif
	}
	return 0;
}
#endif
