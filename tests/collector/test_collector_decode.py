# SPDX-License-Identifier: Apache-2.0
"""Decoders over hand-built ring-buffer records: process lifecycle, files, network, bad input."""

from __future__ import annotations

import socket
import struct

from collector import layout
from collector.decode import Decoder
from collector.decode_net import parse_sockaddr
from collector.proctable import ProcessTable
from lanner.model import FdType, L4Proto
from tests.collector import collector_testlib as rec
from tests.collector.collector_testlib import add_proc


def test_exec_updates_process_and_carries_ancestors(decoder: Decoder, table: ProcessTable) -> None:
    add_proc(table, 1, 0, "init")
    add_proc(table, 100, 1, "sshd")
    add_proc(table, 200, 100, "bash", cwd="/home/alice/", uid=1000)
    ev = decoder.decode(
        rec.exec_record(200, "/usr/bin/cat", ["cat", "/etc/shadow"], uid=1000, gid=1000, env=["HOME=/x", "A=b c"])
    )
    assert ev is not None
    assert ev.type == "execve" and ev.res == 0
    p = ev.proc
    assert (p.comm, p.exe, p.args) == ("cat", "cat", ("/etc/shadow",))
    assert p.exepath == "/usr/bin/cat"  # /proc unreadable: the filename stands in
    assert p.uid == 1000 and p.user_name == "alice" and p.user_homedir == "/home/alice"
    assert p.group_name == "staff"
    assert [a.comm for a in ev.ancestors] == ["sshd", "init"]
    assert ev.arg("filename") == "/usr/bin/cat"
    assert ev.arg("args") == b"/etc/shadow"
    assert p.env == ("HOME=/x", "A=b c") and ev.arg("env") == b"HOME=/x\0A=b c"
    assert ev.identity.node == "node-a" and ev.identity.seq == 1
    assert ev.timing.event_ns == table.clock.to_wall(rec.BOOT_NS)
    assert table.procs[200].proc.comm == "cat"


def test_failed_exec_leaves_process_unchanged(decoder: Decoder, table: ProcessTable) -> None:
    add_proc(table, 200, 1, "bash")
    ev = decoder.decode(rec.exec_record(200, "/nonexistent", ["x"], res=-2, comm="bash"))
    assert ev is not None and ev.res == -2
    assert ev.proc.comm == "bash" and ev.arg("filename") == "/nonexistent"
    assert table.procs[200].proc.comm == "bash"


def test_fork_child_inherits_and_exit_removes(decoder: Decoder, table: ProcessTable) -> None:
    add_proc(table, 1, 0, "init")
    add_proc(table, 200, 1, "bash", cwd="/tmp/", args=("-i",))
    ev = decoder.decode(rec.fork_record(200, 201))
    assert ev is not None and ev.type == "clone" and ev.res == 201
    child = table.procs[201].proc
    assert (child.pid, child.ppid, child.comm, child.cwd, child.args) == (201, 200, "bash", "/tmp/", ("-i",))
    ev = decoder.decode(rec.exec_record(201, "/usr/bin/true", ["true"]))
    assert ev is not None and [a.comm for a in ev.ancestors] == ["bash", "init"]
    ev = decoder.decode(rec.exit_record(201, code=3, comm="true"))
    assert ev is not None and ev.type == "procexit" and ev.arg("ret") == 3 and ev.arg("status") == 3 << 8
    assert 201 not in table.procs


def test_thread_creation_and_thread_view(decoder: Decoder, table: ProcessTable) -> None:
    add_proc(table, 300, 1, "java")
    ev = decoder.decode(rec.fork_record(300, 301, flags=0x10000 | 0x100, comm="java"))
    assert ev is not None and 301 not in table.procs
    ev = decoder.decode(
        rec.open_record(300, "/etc/hosts", comm="worker-1").replace(struct.pack("<I", 300), struct.pack("<I", 300), 1)
    )
    assert ev is not None and ev.proc.comm == "worker-1"
    ev = decoder.decode(rec.exit_record(300, group_dead=False, tid=301, comm="java"))
    assert ev is not None and 300 in table.procs


def test_open_resolves_relative_paths_and_keeps_kernel_flags(decoder: Decoder, table: ProcessTable) -> None:
    add_proc(table, 400, 1, "vim", cwd="/home/alice/")
    flags = 0o1 | 0o100 | 0o1000 | 0o2000000  # O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC
    ev = decoder.decode(rec.open_record(400, "../bob/./notes.txt", res=5, flags=flags, mode=0o644, comm="vim"))
    assert ev is not None and ev.fd is not None
    assert ev.fd.path == "/home/bob/notes.txt" and ev.fd.path_raw == "../bob/./notes.txt"
    assert ev.fd.open_flags == flags and ev.fd.mode == 0o644 and ev.fd.num == 5
    assert ev.fd.type == FdType.FILE
    assert [a.name for a in ev.args] == ["fd", "dirfd", "name", "flags", "mode"]
    # A directory fd, then a path relative to it.
    ev = decoder.decode(rec.open_record(400, "/etc", res=7, flags=0o200000, comm="vim"))
    assert ev is not None and ev.fd is not None and ev.fd.type == FdType.DIRECTORY
    ev = decoder.decode(rec.open_record(400, "passwd", res=8, dirfd=7, comm="vim"))
    assert ev is not None and ev.fd is not None and ev.fd.path == "/etc/passwd"
    # Failed open: no fd number, the path is still known.
    ev = decoder.decode(rec.open_record(400, "/root/secret", res=-13, comm="vim"))
    assert ev is not None and ev.fd is not None and ev.fd.num == -1 and ev.res == -13
    assert ev.fd.path == "/root/secret"


def test_unknown_dirfd_is_marked(decoder: Decoder, table: ProcessTable) -> None:
    add_proc(table, 401, 1, "cat")
    ev = decoder.decode(rec.open_record(401, "x", dirfd=42))
    assert ev is not None and ev.fd is not None and ev.fd.path == "<UNKNOWN>/x"


def test_cloexec_fds_are_forgotten_at_exec(decoder: Decoder, table: ProcessTable) -> None:
    add_proc(table, 402, 1, "sh")
    decoder.decode(rec.open_record(402, "/etc", res=3, flags=0o200000 | 0o2000000, comm="sh"))
    decoder.decode(rec.open_record(402, "/var", res=4, flags=0o200000, comm="sh"))
    decoder.decode(rec.exec_record(402, "/bin/ls", ["ls"]))
    assert set(table.procs[402].fds) == {4}


def test_open_variants(decoder: Decoder, table: ProcessTable) -> None:
    add_proc(table, 403, 1, "sh", cwd="/tmp/")
    ev = decoder.decode(rec.open_record(403, "a", sc=layout.SC_CREAT, flags=0o1101, mode=0o600, comm="sh"))
    assert ev is not None and ev.type == "creat" and [a.name for a in ev.args] == ["fd", "name", "mode"]
    assert ev.fd is not None and ev.fd.path == "/tmp/a"
    ev = decoder.decode(rec.open_record(403, "b", sc=layout.SC_OPENAT2, resolve=0x8, comm="sh"))
    assert ev is not None and ev.type == "openat2" and ev.arg("resolve") == 0x8
    ev = decoder.decode(rec.open_record(403, "/c", sc=layout.SC_OPEN, comm="sh"))
    assert ev is not None and ev.type == "open" and ev.arg("dirfd") is None


def test_chdir_moves_cwd(decoder: Decoder, table: ProcessTable) -> None:
    add_proc(table, 404, 1, "sh", cwd="/")
    ev = decoder.decode(rec.fileop_record(404, layout.SC_CHDIR, "var/log"))
    assert ev is not None and ev.type == "chdir" and ev.arg("path") == "var/log"
    assert table.procs[404].proc.cwd == "/var/log/"
    ev = decoder.decode(rec.open_record(404, "syslog", comm="sh"))
    assert ev is not None and ev.fd is not None and ev.fd.path == "/var/log/syslog"


def test_fileops(decoder: Decoder, table: ProcessTable) -> None:
    add_proc(table, 405, 1, "sh")
    ev = decoder.decode(rec.fileop_record(405, layout.SC_RENAMEAT2, "a", "b", dirfd1=3, dirfd2=4, flags=1))
    assert ev is not None and ev.type == "renameat2"
    assert [(a.name, a.value) for a in ev.args] == [
        ("res", 0),
        ("olddirfd", 3),
        ("oldpath", "a"),
        ("newdirfd", 4),
        ("newpath", "b"),
        ("flags", 1),
    ]
    ev = decoder.decode(rec.fileop_record(405, layout.SC_UNLINKAT, "x", dirfd1=-100, flags=0x200, res=-2))
    assert ev is not None and ev.type == "unlinkat" and ev.res == -2 and ev.arg("flags") == 0x200
    ev = decoder.decode(rec.fileop_record(405, layout.SC_MKDIR, "/d", mode=0o755))
    assert ev is not None and ev.type == "mkdir" and ev.arg("mode") == 0o755


def _sockaddr_in(ip: str, port: int) -> bytes:
    return struct.pack("<H", socket.AF_INET) + struct.pack(">H", port) + socket.inet_aton(ip) + b"\0" * 8


def test_socket_then_connect(decoder: Decoder, table: ProcessTable) -> None:
    add_proc(table, 500, 1, "curl")
    ev = decoder.decode(rec.socket_record(500, 3, socket.AF_INET, socket.SOCK_STREAM | 0o2000000, 6))
    assert ev is not None and ev.type == "socket" and ev.fd is not None and ev.fd.l4proto == L4Proto.TCP
    ev = decoder.decode(rec.sock_record(layout.MSG_CONNECT, 500, 3, _sockaddr_in("10.1.2.3", 443), res=-115))
    assert ev is not None and ev.type == "connect" and ev.fd is not None
    fd = ev.fd
    assert (fd.server_ip, fd.server_port, fd.type, fd.l4proto) == (bytes([10, 1, 2, 3]), 443, FdType.IPV4, L4Proto.TCP)
    assert fd.is_server is False and fd.connected is True


def test_accept4(decoder: Decoder, table: ProcessTable) -> None:
    add_proc(table, 501, 1, "nginx")
    addr6 = (
        struct.pack("<H", socket.AF_INET6)
        + struct.pack(">H", 5555)
        + b"\0" * 4
        + socket.inet_pton(socket.AF_INET6, "2001:db8::1")
        + b"\0" * 4
    )
    ev = decoder.decode(
        rec.sock_record(layout.MSG_ACCEPT, 501, 6, addr6, res=9, sc=layout.SC_ACCEPT4, flags=0o4000, comm="nginx")
    )
    assert ev is not None and ev.type == "accept4" and ev.fd is not None
    assert ev.fd.num == 9 and ev.fd.client_port == 5555 and ev.fd.type == FdType.IPV6
    assert ev.fd.client_ip == socket.inet_pton(socket.AF_INET6, "2001:db8::1") and ev.fd.is_server


def test_parse_sockaddr_unix_abstract_and_short() -> None:
    sa = parse_sockaddr(struct.pack("<H", 1) + b"\0hidden\0")
    assert sa is not None and sa.path == "hidden"
    sa = parse_sockaddr(struct.pack("<H", 1) + b"/run/docker.sock\0junk")
    assert sa is not None and sa.path == "/run/docker.sock"
    assert parse_sockaddr(b"\x02") is None


def test_unknown_process_is_loaded_as_incomplete(decoder: Decoder) -> None:
    ev = decoder.decode(rec.open_record(999, "/etc/passwd", comm="ghost", uid=1000))
    assert ev is not None and ev.proc_incomplete
    assert ev.proc.comm == "ghost" and ev.proc.uid == 1000 and ev.proc.user_name == "alice"


def test_malformed_records_are_counted_not_raised(decoder: Decoder) -> None:
    good = rec.open_record(1, "/x")
    assert decoder.decode(b"\x01\x02") is None
    assert decoder.decode(good[: layout.HDR.size + 4]) is None
    bad_type = bytearray(good)
    struct.pack_into("<I", bad_type, 16, 99)
    assert decoder.decode(bytes(bad_type)) is None
    lying_len = bytearray(good)
    struct.pack_into("<H", lying_len, layout.HDR.size + 32, 500)
    assert decoder.decode(bytes(lying_len)) is None
    assert decoder.malformed == 4
    assert decoder.decode(good) is not None
    assert decoder.seq == 1


def test_setuid_is_noticed_from_the_header(decoder: Decoder, table: ProcessTable) -> None:
    add_proc(table, 600, 1, "su", uid=0)
    ev = decoder.decode(rec.open_record(600, "/x", comm="su", uid=1000))
    assert ev is not None and ev.proc.uid == 1000 and ev.proc.user_name == "alice"


def test_sweep_forgets_vanished_processes(decoder: Decoder, table: ProcessTable) -> None:
    import os
    from pathlib import Path

    add_proc(table, 700, 1, "gone")
    add_proc(table, 701, 1, "alive")
    Path(table.proc_root, "701").mkdir()
    assert table.sweep() == 1
    assert set(table.procs) == {701}
    os.rmdir(Path(table.proc_root, "701"))
    assert table.sweep() == 0  # an unreadable /proc must not empty the table


def test_execveat_exepath_from_the_fd_table(decoder: Decoder, table: ProcessTable) -> None:
    add_proc(table, 710, 1, "python3")
    decoder.decode(rec.open_record(710, "/usr/bin/true", res=3, comm="python3"))
    ev = decoder.decode(rec.exec_record(710, "/dev/fd/3", ["true"], comm="3", sc=layout.SC_EXECVEAT))
    assert ev is not None and ev.type == "execveat"
    assert ev.proc.exepath == "/usr/bin/true" and ev.arg("pathname") == "/dev/fd/3"
    ev = decoder.decode(rec.exec_record(710, "/dev/fd/9/x", ["x"], comm="x", sc=layout.SC_EXECVEAT))
    assert ev is not None and ev.proc.exepath == "/dev/fd/9/x"


def test_setuid_family_updates_ids(decoder: Decoder, table: ProcessTable) -> None:
    add_proc(table, 800, 1, "sudo", uid=1000)
    # setresuid(-1, 0, -1): only the effective uid changes; the real one stays 1000.
    ev = decoder.decode(rec.generic_record(800, layout.SC_SETRESUID, (0xFFFFFFFF, 0, 0xFFFFFFFF), uid=1000))
    assert ev is not None and ev.type == "setresuid"
    assert [(a.name, a.value) for a in ev.args] == [("res", 0), ("ruid", -1), ("euid", 0), ("suid", -1)]
    p = table.procs[800].proc
    assert (p.uid, p.euid, p.user_name) == (1000, 0, "root")
    ev = decoder.decode(rec.generic_record(800, layout.SC_SETUID, (1000,), res=-1, uid=1000))
    assert ev is not None and ev.res == -1 and table.procs[800].proc.euid == 0  # failed: nothing changes


def test_ptrace_unshare_setns_bpf(decoder: Decoder, table: ProcessTable) -> None:
    add_proc(table, 801, 1, "gdb")
    ev = decoder.decode(rec.generic_record(801, layout.SC_PTRACE, (16, 4242, 0, 0), comm="gdb"))
    assert ev is not None and ev.type == "ptrace" and ev.arg("request") == 16 and ev.arg("pid") == 4242
    ev = decoder.decode(rec.generic_record(801, layout.SC_UNSHARE, (0x10000000,), comm="gdb"))
    assert ev is not None and ev.type == "unshare" and ev.arg("flags") == 0x10000000
    ev = decoder.decode(rec.generic_record(801, layout.SC_SETNS, (0xFFFFFFFF, 0x40000000), res=-9, comm="gdb"))
    assert ev is not None and ev.arg("fd") == -1 and ev.arg("nstype") == 0x40000000 and ev.res == -9
    ev = decoder.decode(rec.generic_record(801, layout.SC_BPF, (5,), res=7, comm="gdb"))
    assert ev is not None and ev.type == "bpf" and ev.arg("cmd") == 5 and ev.res == 7


def test_chmod_symlink_link(decoder: Decoder, table: ProcessTable) -> None:
    add_proc(table, 802, 1, "sh")
    ev = decoder.decode(rec.fileop_record(802, layout.SC_FCHMODAT, "x", dirfd1=-100, mode=0o4755))
    assert ev is not None and ev.type == "fchmodat" and ev.arg("mode") == 0o4755 and ev.arg("filename") == "x"
    ev = decoder.decode(rec.fileop_record(802, layout.SC_SYMLINKAT, "/etc/shadow", "s", dirfd2=-100))
    assert ev is not None and ev.type == "symlinkat" and ev.arg("target") == "/etc/shadow"
    assert ev.arg("linkpath") == "s" and ev.arg("linkdirfd") == -100
    ev = decoder.decode(rec.fileop_record(802, layout.SC_LINKAT, "/etc/shadow", "h", dirfd1=3, flags=0x400))
    assert ev is not None and ev.type == "linkat" and ev.arg("flags") == 0x400 and ev.arg("olddir") == 3


def test_dup2_of_a_socket_onto_stdout(decoder: Decoder, table: ProcessTable) -> None:
    import socket as s

    add_proc(table, 900, 1, "bash")
    decoder.decode(rec.socket_record(900, 3, s.AF_INET, s.SOCK_STREAM, 6, comm="bash"))
    addr = struct.pack("<H", s.AF_INET) + struct.pack(">H", 4444) + s.inet_aton("10.0.0.9") + b"\0" * 8
    decoder.decode(rec.sock_record(layout.MSG_CONNECT, 900, 3, addr, comm="bash"))
    ev = decoder.decode(rec.generic_record(900, layout.SC_DUP2, (3, 1), res=1, comm="bash"))
    assert ev is not None and ev.type == "dup2" and ev.fd is not None
    assert ev.fd.num == 1 and ev.fd.type == FdType.IPV4 and ev.fd.server_port == 4444
    assert [(a.name, a.value) for a in ev.args] == [("res", 1), ("oldfd", 3), ("newfd", 1)]
    assert table.procs[900].fds[1].server_ip == bytes([10, 0, 0, 9])
    ev = decoder.decode(rec.generic_record(900, layout.SC_DUP, (77,), res=-9, comm="bash"))
    assert ev is not None and ev.fd is not None and ev.fd.num == -1 and ev.res == -9


def test_listen_marks_the_socket_as_server(decoder: Decoder, table: ProcessTable) -> None:
    import socket as s

    add_proc(table, 901, 1, "nc")
    decoder.decode(rec.socket_record(901, 3, s.AF_INET6, s.SOCK_STREAM, 6, comm="nc"))
    ev = decoder.decode(rec.generic_record(901, layout.SC_LISTEN, (3, 128), comm="nc"))
    assert ev is not None and ev.type == "listen" and ev.arg("backlog") == 128
    assert ev.fd is not None and ev.fd.is_server and ev.fd.type == FdType.IPV6 and ev.fd.l4proto == L4Proto.TCP


def test_udp_sendto_names_its_peer(decoder: Decoder, table: ProcessTable) -> None:
    import socket as s

    add_proc(table, 902, 1, "dig")
    decoder.decode(rec.socket_record(902, 5, s.AF_INET, s.SOCK_DGRAM, 0, comm="dig"))
    addr = struct.pack("<H", s.AF_INET) + struct.pack(">H", 53) + s.inet_aton("8.8.8.8") + b"\0" * 8
    ev = decoder.decode(
        rec.sock_record(layout.MSG_SEND, 902, 5, addr, res=40, sc=layout.SC_SENDTO, flags=40, comm="dig")
    )
    assert ev is not None and ev.type == "sendto" and ev.fd is not None
    assert (ev.fd.l4proto, ev.fd.connected, ev.fd.name_changed) == (L4Proto.UDP, False, True)
    assert ev.fd.server_ip == bytes([8, 8, 8, 8]) and ev.fd.server_port == 53 and ev.arg("size") == 40


def test_namespaced_pids_from_the_probe(decoder: Decoder, table: ProcessTable) -> None:
    add_proc(table, 1000, 1, "containerd-shim")
    ev = decoder.decode(rec.fork_record(1000, 1001))
    ev = decoder.decode(rec.exec_record(1001, "/bin/sh", ["sh"]))
    assert ev is not None and ev.proc.vpid == 1001  # nothing known: the host pid stands in
    raw = rec.open_record(1001, "/etc/passwd", comm="sh")
    head = bytearray(raw)
    struct.pack_into("<II", head, 64, 7, 9)  # vpid, vtid in the header
    ev = decoder.decode(bytes(head))
    assert ev is not None and ev.proc.vpid == 7
    assert table.procs[1001].proc.vpid == 7


def test_first_child_after_unshare_newpid_is_pid_1_of_its_namespace(decoder: Decoder, table: ProcessTable) -> None:
    # runc's child unshares the pid namespace, then forks the container's init. When the event is decoded the
    # container may be gone from /proc already (a quick `docker build` RUN step): its entrypoint is still pid 1.
    add_proc(table, 1, 0, "init")
    add_proc(table, 500, 1, "runc:[1:CHILD]")
    assert decoder.decode(rec.generic_record(500, layout.SC_UNSHARE, (0x20000000,), comm="runc:[1:CHILD]"))
    decoder.decode(rec.fork_record(500, 501, comm="runc:[1:CHILD]"))
    decoder.decode(rec.fork_record(500, 502, comm="runc:[1:CHILD]"))
    assert table.procs[501].proc.vpid == 1
    assert table.procs[502].proc.vpid == 0  # a later child: some other pid there, unknown without /proc
    ev = decoder.decode(rec.exec_record(501, "/bin/sh", ["/bin/sh", "-c", "make"], comm="sh"))
    assert ev is not None and ev.proc.vpid == 1
    add_proc(table, 600, 1, "bash")
    decoder.decode(rec.generic_record(600, layout.SC_UNSHARE, (0x00020000,), comm="bash"))  # CLONE_NEWNS only
    decoder.decode(rec.fork_record(600, 601, comm="bash"))
    assert table.procs[601].proc.vpid == 601
