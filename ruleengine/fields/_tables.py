# SPDX-License-Identifier: Apache-2.0
"""Name tables for rendering raw kernel values the way Falco prints them.

Lanner events keep flags in the **kernel's** numbering (x86_64 ``O_*``, ``CLONE_*``, ``MAP_*``, ``PTRACE_*``...);
Falco's driver first translates them into its own ``PPM_*`` bits and prints names in its table order. Each table
here therefore lists ``(Falco name, kernel value)`` in Falco's print order, so rendering needs no translation step.
Falco-only facts that have no kernel bit get Lanner bits above the kernel's range (see ``O_F_CREATED``).
"""

from __future__ import annotations


def _words(text: str) -> list[str]:
    return text.split()


# ---- errno (Linux generic numbering) -------------------------------------------------------------------------
_ERRNO_NAMES = (
    "EPERM ENOENT ESRCH EINTR EIO ENXIO E2BIG ENOEXEC EBADF ECHILD EAGAIN ENOMEM EACCES EFAULT ENOTBLK EBUSY "
    "EEXIST EXDEV ENODEV ENOTDIR EISDIR EINVAL ENFILE EMFILE ENOTTY ETXTBSY EFBIG ENOSPC ESPIPE EROFS EMLINK EPIPE "
    "EDOM ERANGE EDEADLK ENAMETOOLONG ENOLCK ENOSYS ENOTEMPTY ELOOP - ENOMSG EIDRM ECHRNG EL2NSYNC EL3HLT EL3RST "
    "ELNRNG EUNATCH ENOCSI EL2HLT EBADE EBADR EXFULL ENOANO EBADRQC EBADSLT - EBFONT ENOSTR ENODATA ETIME ENOSR "
    "ENONET ENOPKG EREMOTE ENOLINK EADV ESRMNT ECOMM EPROTO EMULTIHOP EDOTDOT EBADMSG EOVERFLOW ENOTUNIQ EBADFD "
    "EREMCHG ELIBACC ELIBBAD ELIBSCN ELIBMAX ELIBEXEC EILSEQ ERESTART ESTRPIPE EUSERS ENOTSOCK EDESTADDRREQ "
    "EMSGSIZE EPROTOTYPE ENOPROTOOPT EPROTONOSUPPORT ESOCKTNOSUPPORT EOPNOTSUPP EPFNOSUPPORT EAFNOSUPPORT "
    "EADDRINUSE EADDRNOTAVAIL ENETDOWN ENETUNREACH ENETRESET ECONNABORTED ECONNRESET ENOBUFS EISCONN ENOTCONN "
    "ESHUTDOWN ETOOMANYREFS ETIMEDOUT ECONNREFUSED EHOSTDOWN EHOSTUNREACH EALREADY EINPROGRESS ESTALE EUCLEAN "
    "ENOTNAM ENAVAIL EISNAM EREMOTEIO EDQUOT ENOMEDIUM EMEDIUMTYPE ECANCELED ENOKEY EKEYEXPIRED EKEYREVOKED "
    "EKEYREJECTED EOWNERDEAD ENOTRECOVERABLE ERFKILL EHWPOISON"
)
ERRNO: dict[int, str] = {i + 1: n for i, n in enumerate(_words(_ERRNO_NAMES)) if n != "-"}
ERRNO.update(
    {
        512: "ERESTARTSYS",
        513: "ERESTARTNOINTR",
        514: "ERESTARTNOHAND",
        515: "ENOIOCTLCMD",
        516: "ERESTART_RESTARTBLOCK",
        517: "EPROBE_DEFER",
        518: "EOPENSTALE",
        521: "EBADHANDLE",
        522: "ENOTSYNC",
        523: "EBADCOOKIE",
        524: "ENOTSUPP",
        525: "ETOOSMALL",
        526: "ESERVERFAULT",
        527: "EBADTYPE",
        528: "EJUKEBOX",
        529: "EIOCBQUEUED",
        530: "EIOCBRETRY",
    }
)
ERRNO_BY_NAME: dict[str, int] = {n: v for v, n in ERRNO.items()}
ERRNO_BY_NAME["EWOULDBLOCK"] = 11
ERRNO_BY_NAME["EDEADLOCK"] = 35

# ---- signals -------------------------------------------------------------------------------------------------
SIGNALS: dict[int, str] = dict(
    enumerate(
        _words(
            "- SIGHUP SIGINT SIGQUIT SIGILL SIGTRAP SIGABRT SIGBUS SIGFPE SIGKILL SIGUSR1 SIGSEGV SIGUSR2 SIGPIPE "
            "SIGALRM SIGTERM SIGSTKFLT SIGCHLD SIGCONT SIGSTOP SIGTSTP SIGTTIN SIGTTOU SIGURG SIGXCPU SIGXFSZ "
            "SIGVTALRM SIGPROF SIGWINCH SIGIO SIGPWR SIGSYS"
        )
    )
)
del SIGNALS[0]

# ---- capabilities (bit N = kernel capability number N) -------------------------------------------------------
CAPABILITIES: tuple[str, ...] = tuple(
    "CAP_" + n
    for n in _words(
        "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP LINUX_IMMUTABLE NET_BIND_SERVICE "
        "NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT "
        "SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL "
        "SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF CHECKPOINT_RESTORE"
    )
)
CAP_BY_NAME: dict[str, int] = {n: i for i, n in enumerate(CAPABILITIES)}


_CAPS_MEMO: dict[int, str] = {}


def caps_to_string(mask: int) -> str:
    """Space-joined ``CAP_*`` names of the set bits, lowest first; bits above the known range are ignored."""
    # Processes share a handful of capability sets, so the rendering is memoised (bounded).
    text = _CAPS_MEMO.get(mask)
    if text is None:
        text = " ".join([name for bit, name in enumerate(CAPABILITIES) if mask >> bit & 1])
        if len(_CAPS_MEMO) < 4096:
            _CAPS_MEMO[mask] = text
    return text


def caps_from_string(text: str) -> int:
    """Inverse of ``caps_to_string``; accepts names with or without ``CAP_``, any case, space/comma/| separated."""
    mask = 0
    for raw in text.replace(",", " ").replace("|", " ").split():
        name = raw.upper()
        if not name.startswith("CAP_"):
            name = "CAP_" + name
        if name not in CAP_BY_NAME:
            raise ValueError(f"unknown capability '{raw}'")
        mask |= 1 << CAP_BY_NAME[name]
    return mask


# ---- open(2) flags -------------------------------------------------------------------------------------------
O_ACCMODE = 0o3
O_WRONLY = 0o1
O_RDWR = 0o2
O_CREAT = 0o100
O_DIRECTORY = 0o200000
O_TMPFILE_BIT = 0o20000000  # __O_TMPFILE; the O_TMPFILE macro is this | O_DIRECTORY
# Falco-only facts, stored in bits the kernel never uses for open flags (documented in docs/events-jsonl.md).
O_F_CREATED = 1 << 28
FD_UPPER_LAYER = 1 << 29
FD_LOWER_LAYER = 1 << 30

# Print order of Falco's file_flags table; the access mode (O_RDWR/O_WRONLY/O_RDONLY) is handled apart.
_FILE_FLAGS_HEAD = (
    ("O_LARGEFILE", 0o100000),
    ("O_DIRECTORY", O_DIRECTORY),
    ("O_DIRECT", 0o40000),
    ("O_TRUNC", 0o1000),
    ("O_SYNC", 0o4000000),
    ("O_NONBLOCK", 0o4000),
    ("O_EXCL", 0o200),
    ("O_DSYNC", 0o10000),
    ("O_APPEND", 0o2000),
    ("O_CREAT", O_CREAT),
)
_FILE_FLAGS_TAIL = (
    ("O_CLOEXEC", 0o2000000),
    ("O_TMPFILE", O_TMPFILE_BIT),
    ("O_F_CREATED", O_F_CREATED),
    ("FD_UPPER_LAYER", FD_UPPER_LAYER),
    ("FD_LOWER_LAYER", FD_LOWER_LAYER),
)


def open_flags_to_string(flags: int) -> str:
    """Falco's ``file_flags`` rendering of kernel open flags, e.g. ``O_RDONLY|O_CLOEXEC``.

    Falco always reports an access mode, so a read-only open is never ``O_NONE``; bits with no Falco name
    (O_NOCTTY, O_NOFOLLOW, O_PATH, ...) are dropped as Falco's driver drops them.
    """
    names = [n for n, bit in _FILE_FLAGS_HEAD if flags & bit]
    acc = flags & O_ACCMODE
    names.append("O_RDWR" if acc == O_RDWR else "O_WRONLY" if acc == O_WRONLY else "O_RDONLY")
    names.extend(n for n, bit in _FILE_FLAGS_TAIL if flags & bit)
    return "|".join(names)


_FILE_FLAG_BY_NAME = dict(_FILE_FLAGS_HEAD + _FILE_FLAGS_TAIL)
_FILE_FLAG_BY_NAME.update({"O_RDONLY": 0, "O_WRONLY": O_WRONLY, "O_RDWR": O_RDWR, "O_NONE": 0})


def open_flags_from_string(text: str) -> int:
    """Kernel open flags from Falco's rendering (``O_WRONLY|O_CREAT``)."""
    value = 0
    for name in (p.strip() for p in text.split("|")):
        if name not in _FILE_FLAG_BY_NAME:
            raise ValueError(f"unknown open flag '{name}'")
        value |= _FILE_FLAG_BY_NAME[name]
    return value


# ---- generic tables (name, kernel value) in Falco's print order ----------------------------------------------
FlagTable = tuple[tuple[str, int], ...]

# Falco's execve_flags (execve/execveat exit parameter 19): Falco-only values, no kernel counterpart.
EXECVE_FLAGS: FlagTable = (
    ("EXE_WRITABLE", 1),
    ("EXE_UPPER_LAYER", 2),
    ("EXE_FROM_MEMFD", 4),
    ("EXE_LOWER_LAYER", 8),
)

CLONE_FLAGS: FlagTable = (
    ("CLONE_FILES", 0x400),
    ("CLONE_FS", 0x200),
    ("CLONE_IO", 0x80000000),
    ("CLONE_NEWIPC", 0x8000000),
    ("CLONE_NEWNET", 0x40000000),
    ("CLONE_NEWNS", 0x20000),
    ("CLONE_NEWPID", 0x20000000),
    ("CLONE_NEWUTS", 0x4000000),
    ("CLONE_PARENT", 0x8000),
    ("CLONE_PARENT_SETTID", 0x100000),
    ("CLONE_PTRACE", 0x2000),
    ("CLONE_SIGHAND", 0x800),
    ("CLONE_SYSVSEM", 0x40000),
    ("CLONE_THREAD", 0x10000),
    ("CLONE_UNTRACED", 0x800000),
    ("CLONE_VM", 0x100),
    ("CLONE_NEWUSER", 0x10000000),
    ("CLONE_CHILD_CLEARTID", 0x200000),
    ("CLONE_CHILD_SETTID", 0x1000000),
    ("CLONE_SETTLS", 0x80000),
    ("CLONE_VFORK", 0x4000),
    ("CLONE_NEWCGROUP", 0x2000000),
)
PROT_FLAGS: FlagTable = (
    ("PROT_READ", 1),
    ("PROT_WRITE", 2),
    ("PROT_EXEC", 4),
    ("PROT_SEM", 8),
    ("PROT_GROWSDOWN", 0x01000000),
    ("PROT_GROWSUP", 0x02000000),
    ("PROT_SAO", 0x10),
    ("PROT_NONE", 0),
)
MMAP_FLAGS: FlagTable = (
    ("MAP_SHARED", 1),
    ("MAP_PRIVATE", 2),
    ("MAP_FIXED", 0x10),
    ("MAP_ANONYMOUS", 0x20),
    ("MAP_32BIT", 0x40),
    ("MAP_NORESERVE", 0x4000),
    ("MAP_POPULATE", 0x8000),
    ("MAP_NONBLOCK", 0x10000),
    ("MAP_GROWSDOWN", 0x100),
    ("MAP_DENYWRITE", 0x800),
    ("MAP_EXECUTABLE", 0x1000),
    ("MAP_LOCKED", 0x2000),
)
MOUNT_FLAGS: FlagTable = tuple(
    (n, 1 << b)
    for n, b in (
        ("RDONLY", 0),
        ("NOSUID", 1),
        ("NODEV", 2),
        ("NOEXEC", 3),
        ("SYNCHRONOUS", 4),
        ("REMOUNT", 5),
        ("MANDLOCK", 6),
        ("DIRSYNC", 7),
        ("NOATIME", 10),
        ("NODIRATIME", 11),
        ("BIND", 12),
        ("MOVE", 13),
        ("REC", 14),
        ("SILENT", 15),
        ("POSIXACL", 16),
        ("UNBINDABLE", 17),
        ("PRIVATE", 18),
        ("SLAVE", 19),
        ("SHARED", 20),
        ("RELATIME", 21),
        ("KERNMOUNT", 22),
        ("I_VERSION", 23),
        ("STRICTATIME", 24),
        ("LAZYTIME", 25),
        ("NOSEC", 28),
        ("BORN", 29),
        ("ACTIVE", 30),
        ("NOUSER", 31),
    )
)
UMOUNT_FLAGS: FlagTable = (("FORCE", 1), ("DETACH", 2), ("EXPIRE", 4), ("NOFOLLOW", 8))
CHMOD_MODE: FlagTable = tuple(
    (n, 1 << b)
    for b, n in enumerate(
        _words("S_IXOTH S_IWOTH S_IROTH S_IXGRP S_IWGRP S_IRGRP S_IXUSR S_IWUSR S_IRUSR S_ISVTX S_ISGID S_ISUID")
    )
)
MEMFD_FLAGS: FlagTable = (("MFD_CLOEXEC", 1), ("MFD_ALLOW_SEALING", 2), ("MFD_HUGETLB", 4))
UNLINKAT_FLAGS: FlagTable = (("AT_REMOVEDIR", 0x200),)
LINKAT_FLAGS: FlagTable = (("AT_SYMLINK_FOLLOW", 0x400), ("AT_EMPTY_PATH", 0x1000))
FCHOWNAT_FLAGS: FlagTable = (("AT_SYMLINK_NOFOLLOW", 0x100), ("AT_EMPTY_PATH", 0x1000))
RENAMEAT2_FLAGS: FlagTable = (("RENAME_NOREPLACE", 1), ("RENAME_EXCHANGE", 2), ("RENAME_WHITEOUT", 4))
RESOLVE_FLAGS: FlagTable = (
    ("RESOLVE_BENEATH", 8),
    ("RESOLVE_IN_ROOT", 0x10),
    ("RESOLVE_NO_MAGICLINKS", 2),
    ("RESOLVE_NO_SYMLINKS", 4),
    ("RESOLVE_NO_XDEV", 1),
    ("RESOLVE_CACHED", 0x20),
)
FINIT_MODULE_FLAGS: FlagTable = (
    ("MODULE_INIT_IGNORE_MODVERSIONS", 1),
    ("MODULE_INIT_IGNORE_VERMAGIC", 2),
    ("MODULE_INIT_COMPRESSED_FILE", 4),
)
SOCK_FLAGS: FlagTable = (("O_NONBLOCK", 0o4000), ("O_CLOEXEC", 0o2000000))

# Enumerations: exact value match, aliases all printed (AF_LOCAL|AF_UNIX).
SOCKET_FAMILIES: FlagTable = tuple(
    (n, v)
    for v, names in enumerate(
        (
            "AF_UNSPEC",
            "AF_LOCAL AF_UNIX",
            "AF_INET",
            "AF_AX25",
            "AF_IPX",
            "AF_APPLETALK",
            "AF_NETROM",
            "AF_BRIDGE",
            "AF_ATMPVC",
            "AF_X25",
            "AF_INET6",
            "AF_ROSE",
            "AF_DECnet",
            "AF_NETBEUI",
            "AF_SECURITY",
            "AF_KEY",
            "AF_ROUTE AF_NETLINK",
            "AF_PACKET",
            "AF_ASH",
            "AF_ECONET",
            "AF_ATMSVC",
            "AF_RDS",
            "AF_SNA",
            "AF_IRDA",
            "AF_PPPOX",
            "AF_WANPIPE",
            "AF_LLC",
            "-",
            "-",
            "AF_CAN",
            "AF_TIPC",
            "AF_BLUETOOTH",
            "AF_IUCV",
            "AF_RXRPC",
            "AF_ISDN",
            "AF_PHONET",
            "AF_IEEE802154",
            "AF_CAIF",
            "AF_ALG",
            "AF_NFC",
        )
    )
    for n in names.split()
    if n != "-"
)
PTRACE_REQUESTS: FlagTable = tuple(
    ("PTRACE_" + n, v)
    for n, v in (
        ("TRACEME", 0),
        ("PEEKTEXT", 1),
        ("PEEKDATA", 2),
        ("PEEKUSR", 3),
        ("POKETEXT", 4),
        ("POKEDATA", 5),
        ("POKEUSR", 6),
        ("CONT", 7),
        ("KILL", 8),
        ("SINGLESTEP", 9),
        ("GETREGS", 12),
        ("SETREGS", 13),
        ("GETFPREGS", 14),
        ("SETFPREGS", 15),
        ("ATTACH", 16),
        ("DETACH", 17),
        ("GETFPXREGS", 18),
        ("SETFPXREGS", 19),
        ("OLDSETOPTIONS", 21),
        ("SYSCALL", 24),
        ("GET_THREAD_AREA", 25),
        ("SET_THREAD_AREA", 26),
        ("ARCH_PRCTL", 30),
        ("SYSEMU", 31),
        ("SYSEMU_SINGLESTEP", 32),
        ("SINGLEBLOCK", 33),
        ("SETOPTIONS", 0x4200),
        ("GETEVENTMSG", 0x4201),
        ("GETSIGINFO", 0x4202),
        ("SETSIGINFO", 0x4203),
        ("GETREGSET", 0x4204),
        ("SETREGSET", 0x4205),
        ("SEIZE", 0x4206),
        ("INTERRUPT", 0x4207),
        ("LISTEN", 0x4208),
        ("PEEKSIGINFO", 0x4209),
        ("GETSIGMASK", 0x420A),
        ("SETSIGMASK", 0x420B),
    )
)
BPF_COMMANDS: FlagTable = tuple(
    (n, v)
    for v, n in enumerate(
        _words(
            "BPF_MAP_CREATE BPF_MAP_LOOKUP_ELEM BPF_MAP_UPDATE_ELEM BPF_MAP_DELETE_ELEM BPF_MAP_GET_NEXT_KEY "
            "BPF_PROG_LOAD BPF_OBJ_PIN BPF_OBJ_GET BPF_PROG_ATTACH BPF_PROG_DETACH BPF_PROG_TEST_RUN "
            "BPF_PROG_GET_NEXT_ID BPF_MAP_GET_NEXT_ID BPF_PROG_GET_FD_BY_ID BPF_MAP_GET_FD_BY_ID "
            "BPF_OBJ_GET_INFO_BY_FD BPF_PROG_QUERY BPF_RAW_TRACEPOINT_OPEN BPF_BTF_LOAD BPF_BTF_GET_FD_BY_ID "
            "BPF_TASK_FD_QUERY BPF_MAP_LOOKUP_AND_DELETE_ELEM BPF_MAP_FREEZE BPF_BTF_GET_NEXT_ID "
            "BPF_MAP_LOOKUP_BATCH BPF_MAP_LOOKUP_AND_DELETE_BATCH BPF_MAP_UPDATE_BATCH BPF_MAP_DELETE_BATCH "
            "BPF_LINK_CREATE BPF_LINK_UPDATE BPF_LINK_GET_FD_BY_ID BPF_LINK_GET_NEXT_ID BPF_ENABLE_STATS "
            "BPF_ITER_CREATE BPF_LINK_DETACH BPF_PROG_BIND_MAP"
        )
    )
)
PRCTL_OPTIONS: FlagTable = tuple(
    ("PR_" + n, v)
    for n, v in (
        ("SET_PDEATHSIG", 1),
        ("GET_PDEATHSIG", 2),
        ("GET_DUMPABLE", 3),
        ("SET_DUMPABLE", 4),
        ("GET_UNALIGN", 5),
        ("SET_UNALIGN", 6),
        ("GET_KEEPCAPS", 7),
        ("SET_KEEPCAPS", 8),
        ("GET_FPEMU", 9),
        ("SET_FPEMU", 10),
        ("GET_FPEXC", 11),
        ("SET_FPEXC", 12),
        ("GET_TIMING", 13),
        ("SET_TIMING", 14),
        ("SET_NAME", 15),
        ("GET_NAME", 16),
        ("GET_ENDIAN", 19),
        ("SET_ENDIAN", 20),
        ("GET_SECCOMP", 21),
        ("SET_SECCOMP", 22),
        ("CAPBSET_READ", 23),
        ("CAPBSET_DROP", 24),
        ("GET_TSC", 25),
        ("SET_TSC", 26),
        ("GET_SECUREBITS", 27),
        ("SET_SECUREBITS", 28),
        ("SET_TIMERSLACK", 29),
        ("GET_TIMERSLACK", 30),
        ("TASK_PERF_EVENTS_DISABLE", 31),
        ("TASK_PERF_EVENTS_ENABLE", 32),
        ("MCE_KILL", 33),
        ("MCE_KILL_GET", 34),
        ("SET_MM", 35),
        ("SET_CHILD_SUBREAPER", 36),
        ("GET_CHILD_SUBREAPER", 37),
        ("SET_NO_NEW_PRIVS", 38),
        ("GET_NO_NEW_PRIVS", 39),
        ("GET_TID_ADDRESS", 40),
        ("SET_THP_DISABLE", 41),
        ("GET_THP_DISABLE", 42),
        ("MPX_ENABLE_MANAGEMENT", 43),
        ("MPX_DISABLE_MANAGEMENT", 44),
        ("SET_FP_MODE", 45),
        ("GET_FP_MODE", 46),
        ("CAP_AMBIENT", 47),
    )
)


def flags_to_string(table: FlagTable, value: int) -> str:
    """Falco's bitmask rendering: table order, each entry's bits consumed once matched; "" when none match."""
    names: list[str] = []
    rest = value
    for name, bits in table:
        if bits == 0:
            if value == 0:
                names.append(name)
            continue
        if rest & bits == bits:
            names.append(name)
            rest &= ~bits
            if bits == value:
                break
    return "|".join(names)


def enum_to_string(table: FlagTable, value: int) -> str:
    """Falco's enumeration rendering: every name whose value equals ``value``, joined by ``|``."""
    return "|".join(name for name, v in table if v == value)


def names_to_value(table: FlagTable, text: str, *, enum: bool = False) -> int:
    """Inverse rendering for JSON-lines events: ``A|B`` -> kernel value (a plain number is accepted too)."""
    t = text.strip()
    if t.lstrip("-").isdigit():
        return int(t)
    by_name = dict(table)
    value = 0
    for part in t.split("|"):
        name = part.strip()
        if name not in by_name:
            raise ValueError(f"unknown flag name '{name}'")
        value = by_name[name] if enum else value | by_name[name]
    return value
