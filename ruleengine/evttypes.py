# SPDX-License-Identifier: Apache-2.0
"""Event-type names and the event-type set a syscall condition can match (libsinsp's ppm_codes.cpp logic).

A rule is indexed under the event types its condition can match: ``and`` intersects, ``or`` unites, negations
are pushed to the leaves, and only ``evt.type``/``syscall.type`` checks with ``= == != in`` narrow the set.
"""

from __future__ import annotations

from dataclasses import dataclass

from ruleengine.condition.ast import And, Check, Expr, FieldRef, ListValue, MacroRef, Not, Or, StrValue

_SYSCALLS = """
read write open close stat fstat lstat poll lseek mmap mprotect munmap brk rt_sigaction rt_sigprocmask
rt_sigreturn ioctl pread pwrite pread64 pwrite64 readv writev access pipe select sched_yield mremap msync
mincore madvise shmget shmat shmctl dup dup2 pause nanosleep getitimer alarm setitimer getpid sendfile socket
connect accept sendto recvfrom sendmsg recvmsg shutdown bind listen getsockname getpeername socketpair
setsockopt getsockopt clone fork vfork execve exit wait4 kill uname semget semop semctl shmdt msgget msgsnd
msgrcv msgctl fcntl flock fsync fdatasync truncate ftruncate getdents getcwd chdir fchdir rename mkdir rmdir
creat link unlink symlink readlink chmod fchmod chown fchown lchown umask gettimeofday getrlimit getrusage
sysinfo times ptrace getuid syslog getgid setuid setgid geteuid getegid setpgid getppid getpgrp setsid
setreuid setregid getgroups setgroups setresuid getresuid setresgid getresgid getpgid setfsuid setfsgid
getsid capget capset rt_sigpending rt_sigtimedwait rt_sigqueueinfo rt_sigsuspend sigaltstack utime mknod
uselib personality ustat statfs fstatfs sysfs getpriority setpriority sched_setparam sched_getparam
sched_setscheduler sched_getscheduler sched_get_priority_max sched_get_priority_min sched_rr_get_interval
mlock munlock mlockall munlockall vhangup modify_ldt pivot_root prctl arch_prctl adjtimex setrlimit chroot
sync acct settimeofday mount umount umount2 swapon swapoff reboot sethostname setdomainname iopl ioperm
init_module delete_module quotactl gettid readahead setxattr lsetxattr fsetxattr getxattr lgetxattr
fgetxattr listxattr llistxattr flistxattr removexattr lremovexattr fremovexattr tkill time futex
sched_setaffinity sched_getaffinity io_setup io_destroy io_getevents io_submit io_cancel lookup_dcookie
epoll_create remap_file_pages getdents64 set_tid_address restart_syscall semtimedop fadvise64 timer_create
timer_settime timer_gettime timer_getoverrun timer_delete clock_settime clock_gettime clock_getres
clock_nanosleep exit_group epoll_wait epoll_ctl tgkill utimes mbind set_mempolicy get_mempolicy mq_open
mq_unlink mq_timedsend mq_timedreceive mq_notify mq_getsetattr kexec_load waitid add_key request_key keyctl
ioprio_set ioprio_get inotify_init inotify_add_watch inotify_rm_watch migrate_pages openat mkdirat mknodat
fchownat futimesat newfstatat fstatat unlinkat renameat linkat symlinkat readlinkat fchmodat faccessat
pselect6 ppoll unshare set_robust_list get_robust_list splice tee sync_file_range vmsplice move_pages
utimensat epoll_pwait signalfd timerfd_create eventfd fallocate timerfd_settime timerfd_gettime accept4
signalfd4 eventfd2 epoll_create1 dup3 pipe2 inotify_init1 preadv pwritev rt_tgsigqueueinfo perf_event_open
recvmmsg fanotify_init fanotify_mark prlimit prlimit64 name_to_handle_at open_by_handle_at clock_adjtime
syncfs sendmmsg setns getcpu process_vm_readv process_vm_writev kcmp finit_module sched_setattr
sched_getattr renameat2 seccomp getrandom memfd_create kexec_file_load bpf execveat userfaultfd membarrier
mlock2 copy_file_range preadv2 pwritev2 pkey_mprotect pkey_alloc pkey_free statx io_pgetevents rseq
pidfd_send_signal io_uring_setup io_uring_enter io_uring_register open_tree move_mount fsopen fsconfig
fsmount fspick pidfd_open clone3 close_range openat2 pidfd_getfd faccessat2 process_madvise epoll_pwait2
mount_setattr quotactl_fd landlock_create_ruleset landlock_add_rule landlock_restrict_self memfd_secret
process_mrelease futex_waitv set_mempolicy_home_node cachestat fchmodat2 map_shadow_stack futex_wake
futex_wait futex_requeue statmount listmount lsm_get_self_attr lsm_set_self_attr lsm_list_modules mseal
getxattrat setxattrat listxattrat removexattrat socketcall sigreturn waitpid oldstat oldfstat oldlstat
stat64 fstat64 lstat64 fstatat64 mmap2 fcntl64 truncate64 ftruncate64 sendfile64 getdents32 wait4 signal
sigaction sigprocmask sigsuspend sigpending umount_old old_mmap old_select recv send
"""

# Falco's non-syscall event names (tracepoints, meta events, plugin events).
_SPECIAL = """
procexit switch signaldeliver page_fault container cpu_hotplug drop notification infra k8s mesos
tracer pluginevent asyncevent procinfo scapevent sysdigevent
"""

EVENT_TYPES: frozenset[str] = frozenset(_SYSCALLS.split()) | frozenset(_SPECIAL.split())
TYPE_FIELDS = frozenset({"evt.type", "syscall.type"})
TOO_MANY = 100


@dataclass(frozen=True, slots=True)
class EvtSet:
    """A set of event types: ``names`` itself, or (``complement``) every type except ``names``."""

    names: frozenset[str]
    complement: bool = False

    def __and__(self, o: EvtSet) -> EvtSet:
        if not self.complement and not o.complement:
            return EvtSet(self.names & o.names)
        if self.complement and o.complement:
            return EvtSet(self.names | o.names, True)
        pos, neg = (self, o) if not self.complement else (o, self)
        return EvtSet(pos.names - neg.names)

    def __or__(self, o: EvtSet) -> EvtSet:
        if not self.complement and not o.complement:
            return EvtSet(self.names | o.names)
        if self.complement and o.complement:
            return EvtSet(self.names & o.names, True)
        pos, neg = (self, o) if not self.complement else (o, self)
        return EvtSet(neg.names - pos.names, True)

    def invert(self) -> EvtSet:
        """Every type not in this set."""
        return EvtSet(self.names, not self.complement)

    @property
    def is_all(self) -> bool:
        """True when no event type is excluded."""
        return self.complement and not self.names

    def size(self) -> int:
        """How many known event types the set holds."""
        return len(EVENT_TYPES - self.names) if self.complement else len(self.names)

    def code_count(self) -> int:
        """Approximate number of Falco event codes (what Falco's LOAD_NO_EVTTYPE threshold counts).

        Falco counts event codes, and every syscall name has at least an enter and an exit code.
        """
        return 2 * self.size()

    def contains(self, name: str) -> bool:
        """Membership."""
        return (name in self.names) != self.complement


ALL = EvtSet(frozenset(), True)
NONE = EvtSet(frozenset())


def _values(check: Check) -> frozenset[str] | None:
    v = check.value
    if isinstance(v, ListValue):
        return frozenset(v.items)
    if isinstance(v, StrValue):
        return frozenset({v.text})
    return None


def event_types(expr: Expr, negated: bool = False) -> EvtSet:
    """The event types ``expr`` (macros already resolved) can be true for."""
    if isinstance(expr, And):
        sets = [event_types(c, negated) for c in expr.children]
        acc = sets[0]
        for s in sets[1:]:
            acc = (acc | s) if negated else (acc & s)
        return acc
    if isinstance(expr, Or):
        sets = [event_types(c, negated) for c in expr.children]
        acc = sets[0]
        for s in sets[1:]:
            acc = (acc & s) if negated else (acc | s)
        return acc
    if isinstance(expr, Not):
        return event_types(expr.child, not negated)
    if isinstance(expr, MacroRef):
        return ALL
    lhs = expr.lhs
    if not isinstance(lhs, FieldRef) or expr.modifier is not None:
        return ALL
    if lhs.name in TYPE_FIELDS and expr.op in ("=", "==", "!=", "in"):
        vals = _values(expr)
        if vals is None:
            return ALL
        s = EvtSet(vals)
        if expr.op == "!=":
            s = s.invert()
        return s.invert() if negated else s
    if (
        lhs.name == "evt.num"
        and expr.op in ("=", "==", "!=")
        and isinstance(expr.value, StrValue)
        and expr.value.text.strip() in ("0", "+0", "-0")
    ):
        zero = NONE if expr.op != "!=" else ALL
        return zero.invert() if negated else zero
    return ALL
