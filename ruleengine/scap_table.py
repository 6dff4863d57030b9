# SPDX-License-Identifier: Apache-2.0
"""The scap event table for the event types Lanner knows: code, name, and each parameter's name and ``PT_`` type.

Facts of the capture format (libscap's event codes and parameter layouts, ``driver/event_table.c`` of
falcosecurity/libs), generated from that table and kept here as data: even codes are enter events, odd codes exit
events; old versions of an event keep their code and layout, so captures of any age decode by code. Parameters that
libs later appended to an event come last, which is why an older capture may carry fewer of them.
"""

from __future__ import annotations

__all__ = ["EVENTS"]

_TABLE = """
2 open name:FSPATH flags:FLAGS32 mode:UINT32
3 open fd:FD name:FSPATH flags:FLAGS32 mode:UINT32 dev:UINT32 ino:UINT64
4 close fd:FD
5 close res:ERRNO fd:FD
6 read fd:FD size:UINT32
7 read res:ERRNO data:BYTEBUF fd:FD size:UINT32
8 write fd:FD size:UINT32
9 write res:ERRNO data:BYTEBUF fd:FD size:UINT32
12 execve
13 execve res:ERRNO exe:CHARBUF args:BYTEBUF tid:PID pid:PID ptid:PID cwd:CHARBUF fdlimit:UINT64
14 clone
15 clone res:PID exe:CHARBUF args:BYTEBUF tid:PID pid:PID ptid:PID cwd:CHARBUF fdlimit:INT64 flags:FLAGS32
    uid:UINT32 gid:UINT32
16 procexit
18 socket domain:ENUMFLAGS32 type:UINT32 proto:UINT32
19 socket fd:FD domain:ENUMFLAGS32 type:UINT32 proto:UINT32 flags:FLAGS32
20 bind fd:FD
21 bind res:ERRNO addr:SOCKADDR fd:FD
22 connect fd:FD addr:SOCKADDR
23 connect res:ERRNO tuple:SOCKTUPLE fd:FD addr:SOCKADDR
24 listen fd:FD backlog:INT32
25 listen res:ERRNO fd:FD backlog:INT32
26 accept
27 accept fd:FD tuple:SOCKTUPLE queuepct:UINT8
30 sendto fd:FD size:UINT32 tuple:SOCKTUPLE
31 sendto res:ERRNO data:BYTEBUF fd:FD size:UINT32 tuple:SOCKTUPLE
34 recvfrom fd:FD size:UINT32
35 recvfrom res:ERRNO data:BYTEBUF tuple:SOCKTUPLE fd:FD size:UINT32
42 socketpair domain:ENUMFLAGS32 type:UINT32 proto:UINT32
43 socketpair res:ERRNO fd1:FD fd2:FD source:UINT64 peer:UINT64 domain:ENUMFLAGS32 type:UINT32 proto:UINT32
48 sendmsg fd:FD size:UINT32 tuple:SOCKTUPLE
49 sendmsg res:ERRNO data:BYTEBUF fd:FD size:UINT32 tuple:SOCKTUPLE
52 recvmsg fd:FD
53 recvmsg res:ERRNO size:UINT32 data:BYTEBUF tuple:SOCKTUPLE msgcontrol:BYTEBUF fd:FD
56 accept flags:INT32
57 accept fd:FD tuple:SOCKTUPLE queuepct:UINT8
58 creat name:FSPATH mode:UINT32
59 creat fd:FD name:FSPATH mode:UINT32 dev:UINT32 ino:UINT64 creat_flags:FLAGS16
60 pipe
61 pipe res:ERRNO fd1:FD fd2:FD ino:UINT64
94 chdir
95 chdir res:ERRNO path:CHARBUF
96 fchdir fd:FD
97 fchdir res:ERRNO fd:FD
98 mkdir path:FSPATH mode:UINT32
99 mkdir res:ERRNO
100 rmdir path:FSPATH
101 rmdir res:ERRNO
102 openat dirfd:FD name:CHARBUF flags:FLAGS32 mode:UINT32
103 openat fd:FD
104 link oldpath:FSPATH newpath:FSPATH
105 link res:ERRNO
106 linkat olddir:FD oldpath:CHARBUF newdir:FD newpath:CHARBUF
107 linkat res:ERRNO
108 unlink path:FSPATH
109 unlink res:ERRNO
110 unlinkat dirfd:FD name:CHARBUF
111 unlinkat res:ERRNO
112 pread fd:FD size:UINT32 pos:UINT64
113 pread res:ERRNO data:BYTEBUF fd:FD size:UINT32 pos:UINT64
114 pwrite fd:FD size:UINT32 pos:UINT64
115 pwrite res:ERRNO data:BYTEBUF fd:FD size:UINT32 pos:UINT64
116 readv fd:FD
117 readv res:ERRNO size:UINT32 data:BYTEBUF fd:FD
118 writev fd:FD size:UINT32
119 writev res:ERRNO data:BYTEBUF fd:FD size:UINT32
124 dup fd:FD
125 dup res:FD
128 kill pid:PID sig:SIGTYPE
129 kill res:ERRNO pid:PID sig:SIGTYPE
130 tkill tid:PID sig:SIGTYPE
131 tkill res:ERRNO tid:PID sig:SIGTYPE
132 tgkill pid:PID tid:PID sig:SIGTYPE
133 tgkill res:ERRNO pid:PID tid:PID sig:SIGTYPE
154 execve
155 execve res:ERRNO exe:CHARBUF args:BYTEBUF tid:PID pid:PID ptid:PID cwd:CHARBUF fdlimit:UINT64
    pgft_maj:UINT64 pgft_min:UINT64 vm_size:UINT32 vm_rss:UINT32 vm_swap:UINT32
156 clone
157 clone res:PID exe:CHARBUF args:BYTEBUF tid:PID pid:PID ptid:PID cwd:CHARBUF fdlimit:INT64 pgft_maj:UINT64
    pgft_min:UINT64 vm_size:UINT32 vm_rss:UINT32 vm_swap:UINT32 flags:FLAGS32 uid:UINT32 gid:UINT32
160 mmap addr:UINT64 length:UINT64 prot:FLAGS32 flags:FLAGS32 fd:FD offset:UINT64
161 mmap res:ERRNO vm_size:UINT32 vm_rss:UINT32 vm_swap:UINT32 addr:UINT64 length:UINT64 prot:FLAGS32
    flags:FLAGS32 fd:FD offset:UINT64
162 mmap2 addr:UINT64 length:UINT64 prot:FLAGS32 flags:FLAGS32 fd:FD pgoffset:UINT64
163 mmap2 res:ERRNO vm_size:UINT32 vm_rss:UINT32 vm_swap:UINT32 addr:UINT64 length:UINT64 prot:FLAGS32
    flags:FLAGS32 fd:FD pgoffset:UINT64
168 ptrace request:ENUMFLAGS16 pid:PID
169 ptrace res:ERRNO addr:DYN data:DYN request:ENUMFLAGS16 pid:PID
172 execve
173 execve res:ERRNO exe:CHARBUF args:BYTEBUF tid:PID pid:PID ptid:PID cwd:CHARBUF fdlimit:UINT64
    pgft_maj:UINT64 pgft_min:UINT64 vm_size:UINT32 vm_rss:UINT32 vm_swap:UINT32 env:BYTEBUF
174 rename
175 rename res:ERRNO oldpath:FSPATH newpath:FSPATH
176 renameat
177 renameat res:ERRNO olddirfd:FD oldpath:FSRELPATH newdirfd:FD newpath:FSRELPATH
178 symlink
179 symlink res:ERRNO target:CHARBUF linkpath:FSPATH
180 symlinkat
181 symlinkat res:ERRNO target:CHARBUF linkdirfd:FD linkpath:FSRELPATH
182 fork
183 fork res:PID exe:CHARBUF args:BYTEBUF tid:PID pid:PID ptid:PID cwd:CHARBUF fdlimit:INT64 pgft_maj:UINT64
    pgft_min:UINT64 vm_size:UINT32 vm_rss:UINT32 vm_swap:UINT32 flags:FLAGS32 uid:UINT32 gid:UINT32
184 vfork
185 vfork res:PID exe:CHARBUF args:BYTEBUF tid:PID pid:PID ptid:PID cwd:CHARBUF fdlimit:INT64 pgft_maj:UINT64
    pgft_min:UINT64 vm_size:UINT32 vm_rss:UINT32 vm_swap:UINT32 flags:FLAGS32 uid:UINT32 gid:UINT32
186 procexit status:ERRNO ret:ERRNO sig:SIGTYPE core:UINT8 reaper_tid:PID
192 setresuid ruid:UID euid:UID suid:UID
193 setresuid res:ERRNO ruid:UID euid:UID suid:UID
194 setresgid rgid:GID egid:GID sgid:GID
195 setresgid res:ERRNO rgid:GID egid:GID sgid:GID
198 setuid uid:UID
199 setuid res:ERRNO uid:UID
200 setgid gid:GID
201 setgid res:ERRNO gid:GID
214 execve
215 execve res:ERRNO exe:CHARBUF args:BYTEBUF tid:PID pid:PID ptid:PID cwd:CHARBUF fdlimit:UINT64
    pgft_maj:UINT64 pgft_min:UINT64 vm_size:UINT32 vm_rss:UINT32 vm_swap:UINT32 comm:CHARBUF env:BYTEBUF
216 clone
217 clone res:PID exe:CHARBUF args:BYTEBUF tid:PID pid:PID ptid:PID cwd:CHARBUF fdlimit:INT64 pgft_maj:UINT64
    pgft_min:UINT64 vm_size:UINT32 vm_rss:UINT32 vm_swap:UINT32 comm:CHARBUF flags:FLAGS32 uid:UINT32 gid:UINT32
218 fork
219 fork res:PID exe:CHARBUF args:BYTEBUF tid:PID pid:PID ptid:PID cwd:CHARBUF fdlimit:INT64 pgft_maj:UINT64
    pgft_min:UINT64 vm_size:UINT32 vm_rss:UINT32 vm_swap:UINT32 comm:CHARBUF flags:FLAGS32 uid:UINT32 gid:UINT32
220 vfork
221 vfork res:PID exe:CHARBUF args:BYTEBUF tid:PID pid:PID ptid:PID cwd:CHARBUF fdlimit:INT64 pgft_maj:UINT64
    pgft_min:UINT64 vm_size:UINT32 vm_rss:UINT32 vm_swap:UINT32 comm:CHARBUF flags:FLAGS32 uid:UINT32 gid:UINT32
222 clone
223 clone res:PID exe:CHARBUF args:BYTEBUF tid:PID pid:PID ptid:PID cwd:CHARBUF fdlimit:INT64 pgft_maj:UINT64
    pgft_min:UINT64 vm_size:UINT32 vm_rss:UINT32 vm_swap:UINT32 comm:CHARBUF cgroups:BYTEBUF flags:FLAGS32
    uid:UINT32 gid:UINT32 vtid:PID vpid:PID pidns_init_start_ts:UINT64
224 fork
225 fork res:PID exe:CHARBUF args:BYTEBUF tid:PID pid:PID ptid:PID cwd:CHARBUF fdlimit:INT64 pgft_maj:UINT64
    pgft_min:UINT64 vm_size:UINT32 vm_rss:UINT32 vm_swap:UINT32 comm:CHARBUF cgroups:BYTEBUF flags:FLAGS32
    uid:UINT32 gid:UINT32 vtid:PID vpid:PID pidns_init_start_ts:UINT64
226 vfork
227 vfork res:PID exe:CHARBUF args:BYTEBUF tid:PID pid:PID ptid:PID cwd:CHARBUF fdlimit:INT64 pgft_maj:UINT64
    pgft_min:UINT64 vm_size:UINT32 vm_rss:UINT32 vm_swap:UINT32 comm:CHARBUF cgroups:BYTEBUF flags:FLAGS32
    uid:UINT32 gid:UINT32 vtid:PID vpid:PID pidns_init_start_ts:UINT64
230 execve
231 execve res:ERRNO exe:CHARBUF args:BYTEBUF tid:PID pid:PID ptid:PID cwd:CHARBUF fdlimit:UINT64
    pgft_maj:UINT64 pgft_min:UINT64 vm_size:UINT32 vm_rss:UINT32 vm_swap:UINT32 comm:CHARBUF cgroups:BYTEBUF
    env:BYTEBUF
240 setns fd:FD nstype:FLAGS32
241 setns res:ERRNO fd:FD nstype:FLAGS32
246 accept
247 accept fd:FD tuple:SOCKTUPLE queuepct:UINT8 queuelen:UINT32 queuemax:UINT32
248 accept flags:INT32
249 accept fd:FD tuple:SOCKTUPLE queuepct:UINT8 queuelen:UINT32 queuemax:UINT32
256 mount flags:FLAGS32
257 mount res:ERRNO dev:CHARBUF dir:FSPATH type:CHARBUF flags:FLAGS32
258 umount flags:FLAGS32
259 umount res:ERRNO name:FSPATH
266 chroot
267 chroot res:ERRNO path:FSPATH
276 mkdir mode:UINT32
277 mkdir res:ERRNO path:FSPATH mode:UINT32
278 rmdir
279 rmdir res:ERRNO path:FSPATH
282 execve
283 execve res:ERRNO exe:CHARBUF args:BYTEBUF tid:PID pid:PID ptid:PID cwd:CHARBUF fdlimit:UINT64
    pgft_maj:UINT64 pgft_min:UINT64 vm_size:UINT32 vm_rss:UINT32 vm_swap:UINT32 comm:CHARBUF cgroups:BYTEBUF
    env:BYTEBUF tty:INT32
284 unshare flags:FLAGS32
285 unshare res:ERRNO flags:FLAGS32
288 execve filename:FSPATH
289 execve res:ERRNO exe:CHARBUF args:BYTEBUF tid:PID pid:PID ptid:PID cwd:CHARBUF fdlimit:UINT64
    pgft_maj:UINT64 pgft_min:UINT64 vm_size:UINT32 vm_rss:UINT32 vm_swap:UINT32 comm:CHARBUF cgroups:BYTEBUF
    env:BYTEBUF tty:INT32
292 execve filename:FSPATH
293 execve res:ERRNO exe:CHARBUF args:BYTEBUF tid:PID pid:PID ptid:PID cwd:CHARBUF fdlimit:UINT64
    pgft_maj:UINT64 pgft_min:UINT64 vm_size:UINT32 vm_rss:UINT32 vm_swap:UINT32 comm:CHARBUF cgroups:BYTEBUF
    env:BYTEBUF tty:UINT32 vpgid:PID loginuid:UID flags:FLAGS32 cap_inheritable:UINT64 cap_permitted:UINT64
    cap_effective:UINT64 exe_ino:UINT64 exe_ino_ctime:ABSTIME exe_ino_mtime:ABSTIME uid:UID
    trusted_exepath:FSPATH pgid:PID gid:GID filename:FSPATH
296 bpf cmd:INT64
297 bpf res_or_fd:DYN
300 unlink
301 unlink res:ERRNO path:FSPATH
302 unlinkat
303 unlinkat res:ERRNO dirfd:FD name:FSRELPATH flags:FLAGS32
304 mkdirat
305 mkdirat res:ERRNO dirfd:FD path:FSRELPATH mode:UINT32
306 openat dirfd:FD name:FSRELPATH flags:FLAGS32 mode:UINT32
307 openat fd:FD dirfd:FD name:FSRELPATH flags:FLAGS32 mode:UINT32 dev:UINT32 ino:UINT64
308 link
309 link res:ERRNO oldpath:FSPATH newpath:FSPATH
310 linkat
311 linkat res:ERRNO olddir:FD oldpath:FSRELPATH newdir:FD newpath:FSRELPATH flags:FLAGS32
312 fchmodat
313 fchmodat res:ERRNO dirfd:FD filename:FSRELPATH mode:MODE
314 chmod
315 chmod res:ERRNO filename:FSPATH mode:MODE
316 fchmod
317 fchmod res:ERRNO fd:FD mode:MODE
318 renameat2
319 renameat2 res:ERRNO olddirfd:FD oldpath:FSRELPATH newdirfd:FD newpath:FSRELPATH flags:FLAGS32
320 userfaultfd
321 userfaultfd res:ERRNO flags:FLAGS32
326 openat2 dirfd:FD name:FSRELPATH flags:FLAGS32 mode:UINT32 resolve:FLAGS32
327 openat2 fd:FD dirfd:FD name:FSRELPATH flags:FLAGS32 mode:UINT32 resolve:FLAGS32 dev:UINT32 ino:UINT64
328 mprotect addr:UINT64 length:UINT64 prot:FLAGS32
329 mprotect res:ERRNO addr:UINT64 length:UINT64 prot:FLAGS32
330 execveat dirfd:FD pathname:FSRELPATH flags:FLAGS32
331 execveat res:ERRNO exe:CHARBUF args:BYTEBUF tid:PID pid:PID ptid:PID cwd:CHARBUF fdlimit:UINT64
    pgft_maj:UINT64 pgft_min:UINT64 vm_size:UINT32 vm_rss:UINT32 vm_swap:UINT32 comm:CHARBUF cgroups:BYTEBUF
    env:BYTEBUF tty:UINT32 vpgid:PID loginuid:UID flags:FLAGS32 cap_inheritable:UINT64 cap_permitted:UINT64
    cap_effective:UINT64 exe_ino:UINT64 exe_ino_ctime:ABSTIME exe_ino_mtime:ABSTIME uid:UID
    trusted_exepath:FSPATH pgid:PID gid:GID
334 clone3
335 clone3 res:PID exe:CHARBUF args:BYTEBUF tid:PID pid:PID ptid:PID cwd:CHARBUF fdlimit:INT64 pgft_maj:UINT64
    pgft_min:UINT64 vm_size:UINT32 vm_rss:UINT32 vm_swap:UINT32 comm:CHARBUF cgroups:BYTEBUF flags:FLAGS32
    uid:UINT32 gid:UINT32 vtid:PID vpid:PID pidns_init_start_ts:UINT64
336 open_by_handle_at
337 open_by_handle_at fd:FD mountfd:FD flags:FLAGS32 path:FSPATH dev:UINT32 ino:UINT64
352 capset
353 capset res:ERRNO cap_inheritable:UINT64 cap_permitted:UINT64 cap_effective:UINT64
362 dup2 fd:FD
363 dup2 res:FD oldfd:FD newfd:FD
364 dup3 fd:FD
365 dup3 res:FD oldfd:FD newfd:FD flags:FLAGS32
366 dup fd:FD
367 dup res:FD oldfd:FD
368 bpf cmd:INT64
369 bpf fd:FD cmd:ENUMFLAGS32
378 chown
379 chown res:ERRNO path:FSPATH uid:UINT32 gid:UINT32
380 lchown
381 lchown res:ERRNO path:FSPATH uid:UINT32 gid:UINT32
382 fchown
383 fchown res:ERRNO fd:FD uid:UINT32 gid:UINT32
384 fchownat
385 fchownat res:ERRNO dirfd:FD pathname:FSRELPATH uid:UINT32 gid:UINT32 flags:FLAGS32
386 umount
387 umount res:ERRNO name:FSPATH
388 accept4 flags:INT32
389 accept4 fd:FD tuple:SOCKTUPLE queuepct:UINT8 queuelen:UINT32 queuemax:UINT32 flags:INT32
390 umount2 flags:FLAGS32
391 umount2 res:ERRNO name:FSPATH flags:FLAGS32
392 pipe2
393 pipe2 res:ERRNO fd1:FD fd2:FD ino:UINT64 flags:FLAGS32
400 prctl
401 prctl res:ERRNO option:ENUMFLAGS32 arg2_str:CHARBUF arg2_int:INT64
404 memfd_create
405 memfd_create fd:FD name:CHARBUF flags:FLAGS32
410 init_module
411 init_module res:ERRNO img:BYTEBUF length:UINT64 uargs:CHARBUF
412 finit_module
413 finit_module res:ERRNO fd:FD uargs:CHARBUF flags:FLAGS32
426 setreuid
427 setreuid res:ERRNO ruid:UID euid:UID
428 setregid
429 setregid res:ERRNO rgid:UID egid:UID
"""


def _parse(text: str) -> dict[int, tuple[str, tuple[tuple[str, str], ...]]]:
    out: dict[int, tuple[str, tuple[tuple[str, str], ...]]] = {}
    for entry in text.replace("\n    ", " ").split("\n"):
        if entry.strip():
            code, name, *params = entry.split()
            out[int(code)] = (name, tuple((p.split(":")[0], p.split(":")[1]) for p in params))
    return out


# code -> (event name, ((parameter name, PT type without the PT_ prefix), ...))
EVENTS = _parse(_TABLE)
