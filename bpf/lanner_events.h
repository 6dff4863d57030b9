/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Wire layout of the records the Lanner probes write into the ring buffer.
 *
 * Every record starts with struct lanner_hdr; `type` selects the body that follows it, and `size` is the total
 * record length (header + body + trailing variable data). Strings in the trailing data are NUL-terminated and
 * their lengths (including the NUL) are given in the body, so userspace never scans for terminators.
 *
 * collector/layout.py mirrors this file with ctypes; tests/collector/test_layout.py compiles a probe of this
 * header with gcc and compares every offset and size, so the two cannot drift silently.
 * Only fixed-width types are used so the same header compiles for BPF and for the host.
 */
#ifndef LANNER_EVENTS_H
#define LANNER_EVENTS_H

#include <linux/types.h>

/* Message type ids (lanner_hdr.type). */
#define LANNER_MSG_EXEC 1    /* execve/execveat, success (sched_process_exec) or failure (sys_exit) */
#define LANNER_MSG_FORK 2    /* sched_process_fork: new process or thread */
#define LANNER_MSG_EXIT 3    /* sched_process_exit */
#define LANNER_MSG_OPEN 4    /* open/openat/openat2/creat/open_by_handle_at exit */
#define LANNER_MSG_CONNECT 5 /* connect exit */
#define LANNER_MSG_ACCEPT 6  /* accept/accept4 exit */
#define LANNER_MSG_SOCKET 7  /* socket exit */
#define LANNER_MSG_FILEOP 8  /* unlink*, rename*, mkdir*, rmdir, chdir, fchdir, chmod*, symlink*, link* exit */
#define LANNER_MSG_SEND 10   /* sendto/sendmsg with an explicit destination (unconnected sockets) */
#define LANNER_MSG_GENERIC 9 /* syscalls whose arguments are all numbers: set*id, ptrace, unshare, setns, bpf, prctl, dup* */
#define LANNER_MSG_FDPAIR 11 /* pipe/pipe2/socketpair: two new fds */
#define LANNER_MSG_RECV 12   /* recvfrom/recvmsg, with the sender's address when the call returns one */
#define LANNER_MSG_STRS 13   /* up to three strings and two numbers: mount, umount2, init_module, finit_module */

/* Syscall ids inside a family (the `sc` field of each body); the decoders map them to Falco event names. */
#define LANNER_SC_EXECVE 1
#define LANNER_SC_EXECVEAT 2
#define LANNER_SC_CLONE 3
#define LANNER_SC_CLONE3 4
#define LANNER_SC_FORK 5
#define LANNER_SC_VFORK 6
#define LANNER_SC_KTHREAD 7 /* fork with no clone syscall in flight (kernel threads) */
#define LANNER_SC_OPEN 10
#define LANNER_SC_OPENAT 11
#define LANNER_SC_OPENAT2 12
#define LANNER_SC_CREAT 13
#define LANNER_SC_OPEN_BY_HANDLE_AT 14
#define LANNER_SC_CONNECT 20
#define LANNER_SC_ACCEPT 21
#define LANNER_SC_ACCEPT4 22
#define LANNER_SC_SOCKET 23
#define LANNER_SC_SENDTO 24
#define LANNER_SC_SENDMSG 25
#define LANNER_SC_UNLINK 30
#define LANNER_SC_UNLINKAT 31
#define LANNER_SC_RENAME 32
#define LANNER_SC_RENAMEAT 33
#define LANNER_SC_RENAMEAT2 34
#define LANNER_SC_MKDIR 35
#define LANNER_SC_MKDIRAT 36
#define LANNER_SC_RMDIR 37
#define LANNER_SC_CHDIR 38
#define LANNER_SC_FCHDIR 39
#define LANNER_SC_CHMOD 40
#define LANNER_SC_FCHMOD 41
#define LANNER_SC_FCHMODAT 42
#define LANNER_SC_SYMLINK 43
#define LANNER_SC_SYMLINKAT 44
#define LANNER_SC_LINK 45
#define LANNER_SC_LINKAT 46
#define LANNER_SC_SETUID 50
#define LANNER_SC_SETGID 51
#define LANNER_SC_SETREUID 52
#define LANNER_SC_SETREGID 53
#define LANNER_SC_SETRESUID 54
#define LANNER_SC_SETRESGID 55
#define LANNER_SC_PTRACE 56
#define LANNER_SC_UNSHARE 57
#define LANNER_SC_SETNS 58
#define LANNER_SC_BPF 59
#define LANNER_SC_PRCTL 60
#define LANNER_SC_DUP 61
#define LANNER_SC_DUP2 62
#define LANNER_SC_DUP3 63
#define LANNER_SC_LISTEN 64
#define LANNER_SC_CLOSE 70
#define LANNER_SC_PIPE 71
#define LANNER_SC_PIPE2 72
#define LANNER_SC_SOCKETPAIR 73
#define LANNER_SC_EVENTFD 74
#define LANNER_SC_EVENTFD2 75
#define LANNER_SC_FCNTL 76 /* only F_DUPFD and F_DUPFD_CLOEXEC are reported */
#define LANNER_SC_USERFAULTFD 77
#define LANNER_SC_RECVFROM 78
#define LANNER_SC_RECVMSG 79
#define LANNER_SC_MOUNT 80
#define LANNER_SC_UMOUNT2 81
#define LANNER_SC_INIT_MODULE 82
#define LANNER_SC_FINIT_MODULE 83

/* Size limits of the variable parts. Powers of two: the probes mask offsets with (size - 1). */
#define LANNER_PATH_MAX 512
#define LANNER_ARGS_MAX 4096
#define LANNER_ENV_MAX 4096
#define LANNER_ARG_MAX 1024 /* one argv string */
#define LANNER_MAX_ARGC 32
#define LANNER_SOCKADDR_MAX 128

struct lanner_hdr {
	__u64 ts_ns;     /* bpf_ktime_get_boot_ns() */
	__u64 cgroup_id; /* bpf_get_current_cgroup_id() */
	__u32 type;      /* LANNER_MSG_* */
	__u32 size;      /* whole record, bytes */
	__u32 pid;       /* tgid of the current task */
	__u32 tid;
	__u32 uid; /* real uid/gid from bpf_get_current_uid_gid() */
	__u32 gid;
	__u32 cpu;
	__u32 flags; /* LANNER_HF_* */
	char comm[16];
	__u32 vpid; /* pid and tid in the process's pid namespace, 0 when its namespace is not registered */
	__u32 vtid;
};

/* lanner_hdr.flags */
#define LANNER_HF_ARGS_TRUNCATED 1 /* argv had more strings or bytes than fit */
#define LANNER_HF_ENV_TRUNCATED 2  /* so had the environment */

struct lanner_exec {
	__s64 res;
	__u32 sc;       /* LANNER_SC_EXECVE / LANNER_SC_EXECVEAT */
	__s32 old_tid;  /* tid before exec (differs when a non-leader thread execs) */
	__s32 dirfd;    /* execveat only */
	__u32 at_flags; /* execveat only, kernel AT_* numbering */
	__u16 filename_len;
	__u16 args_len; /* argv blob: NUL-separated strings, argv[0] first */
	__u32 argc;     /* strings captured */
	__u16 env_len;  /* envp blob, same format; 0 when environment capture is off */
	__u16 _pad[3];
	/* followed by: struct lanner_task, filename[filename_len], args[args_len], env[env_len] */
};

/* Facts about the task read from kernel structs at exec (sched_process_exec), with offsets from the running
 * kernel's BTF. Follows struct lanner_exec in every exec record; all zero unless flags has LANNER_TF_VALID (the
 * probes were built without BTF offsets, or the exec failed). */
struct lanner_task {
	__u64 exe_ino;
	__u64 exe_ctime_ns;
	__u64 exe_mtime_ns;
	__u64 cap_inheritable;
	__u64 cap_permitted;
	__u64 cap_effective;
	__u64 sb_magic;  /* super_block.s_magic of the executable's file system */
	__u64 sb_flags;  /* super_block.s_flags (SB_RDONLY = 1) */
	__u32 mnt_flags; /* vfsmount.mnt_flags of the exe's mount (MNT_READONLY = 0x40) */
	__u32 exe_mode;
	__u32 exe_uid;
	__u32 exe_gid;
	__u32 euid;
	__u32 egid;
	__u32 loginuid; /* 0xffffffff when unset */
	__u32 tty;      /* controlling terminal as major << 20 | minor, 0 without one */
	__u32 ppid;     /* real_parent->tgid */
	__u32 vpid;     /* pid in the task's own pid namespace */
	__u32 pidns;    /* pid namespace inode number */
	__u32 mntns;    /* mount namespace inode number */
	__u32 sid;      /* session and process group leaders, host pids */
	__u32 pgid;
	__u32 flags;    /* LANNER_TF_* */
	__u32 _pad;
	char pcomm[16]; /* real_parent->comm */
};

/* lanner_task.flags */
#define LANNER_TF_VALID 1
#define LANNER_TF_UPPER_KNOWN 2 /* the overlayfs layer could be told (ovl_inode offsets known, exe on overlayfs) */
#define LANNER_TF_UPPER 4       /* the executable has an upper (writable layer) dentry */
#define LANNER_TF_MEMFD 8       /* the executable's dentry is named memfd:... */
#define LANNER_TF_LOGINUID 16   /* loginuid was read (kernel built with audit) */

struct lanner_fork {
	__u64 clone_flags; /* kernel CLONE_* of the clone call; synthesized for fork/vfork */
	__u32 sc;          /* LANNER_SC_CLONE ... LANNER_SC_KTHREAD */
	__u32 parent_pid;  /* tgid of the parent */
	__u32 parent_tid;
	__u32 child_tid;
	__u32 child_pid; /* tgid of the child: parent_pid for CLONE_THREAD, else child_tid */
	__u32 _pad;
};

struct lanner_exit {
	__s32 code;      /* exit(2)/exit_group(2) status argument; valid when has_code */
	__u32 has_code;
	__u32 group_dead; /* last thread of the process */
	__u32 _pad;
};

struct lanner_open {
	__s64 res; /* new fd or -errno */
	__u64 resolve; /* openat2 how.resolve */
	__u32 sc;
	__s32 dirfd;
	__u32 flags; /* kernel O_* numbering */
	__u32 mode;
	__u16 name_len;
	__u16 _pad[3];
	/* followed by: name[name_len] */
};

struct lanner_sock {
	__s64 res;
	__u32 sc;
	__s32 fd;         /* connect: the socket; accept: the listening socket */
	__u32 flags;      /* accept4 flags; sendto: bytes requested */
	__u32 addr_len;   /* bytes valid in addr (0 when unknown) */
	__u8 addr[LANNER_SOCKADDR_MAX]; /* struct sockaddr_* as passed (connect, send*) or received (accept) */
};

struct lanner_socket {
	__s64 res;
	__u32 sc;
	__u32 domain;
	__u32 type;
	__u32 protocol;
};

struct lanner_generic {
	__s64 res;
	__u32 sc;
	__u32 _pad;
	__u64 args[4]; /* the syscall's first arguments, as passed */
};

struct lanner_fileop {
	__s64 res;
	__u32 sc;
	__s32 dirfd1; /* olddirfd / dirfd / fchdir and fchmod fd */
	__s32 dirfd2; /* newdirfd */
	__u32 flags;  /* unlinkat / renameat2 flags */
	__u32 mode;   /* mkdir / chmod mode */
	__u16 path1_len;
	__u16 path2_len;
	/* followed by: path1[path1_len], path2[path2_len] */
};

/* pipe, pipe2, socketpair. ino1/ino2: inode of each new fd's file (pipefs / sockfs), 0 when unknown. */
struct lanner_fdpair {
	__s64 res;
	__u32 sc;
	__s32 fd1;
	__s32 fd2;
	__u32 flags; /* pipe2 flags (kernel O_*) */
	__u32 domain; /* socketpair */
	__u32 type;
	__u32 protocol;
	__u32 _pad;
	__u64 ino1;
	__u64 ino2;
};

/* Syscalls with string arguments that are not paths of the file families. */
struct lanner_strs {
	__s64 res;
	__u32 sc;
	__u32 flags;   /* mount/umount2/finit_module flags */
	__u64 num[2];  /* init_module: image length; finit_module: fd */
	__u16 len[3];  /* string lengths including the NUL (mount: dev, dir, type; umount2: name; *_module: uargs) */
	__u16 _pad;
	/* followed by: the strings */
};

#endif
