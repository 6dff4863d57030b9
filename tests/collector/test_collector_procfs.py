# SPDX-License-Identifier: Apache-2.0
"""/proc parsing (pure functions over text) and the user/group tables."""

from __future__ import annotations

import os
from pathlib import Path

from collector import procfs
from collector.cgroups import CgroupMap, find_cgroup2_root
from collector.users import UserDb, parse_group, parse_passwd

STATUS = """Name:\tsshd
Umask:\t0022
State:\tS (sleeping)
Tgid:\t812
Ngid:\t0
Pid:\t812
PPid:\t1
Uid:\t1000\t0\t0\t0
Gid:\t1000\t1000\t1000\t1000
NSpid:\t812\t7
NSpgid:\t812\t7
CapInh:\t0000000000000000
CapPrm:\t000001ffffffffff
CapEff:\t0000000000200000
"""


def test_parse_status() -> None:
    st = procfs.parse_status(STATUS)
    assert st.name == "sshd" and st.tgid == 812 and st.ppid == 1
    assert st.uids == (1000, 0, 0, 0) and st.gids[1] == 1000
    assert st.nspid == (812, 7) and st.nspgid == (812, 7)
    assert st.cap_permitted == 0x1FFFFFFFFFF and st.cap_effective == 1 << 21 and st.cap_inheritable == 0


def test_parse_status_missing_fields() -> None:
    st = procfs.parse_status("Name:\tx\n")
    assert st.uids[0] == procfs.UNSET_ID and st.cap_effective is None and st.nspid == ()


def test_parse_stat_with_hostile_comm() -> None:
    fields = " ".join(str(i) for i in range(3, 53))
    text = f"4242 (a) b (c)) S 1 4242 4242 34816 {fields}"
    st = procfs.parse_stat(text)
    assert st.comm == "a) b (c)"
    assert (st.ppid, st.pgrp, st.session, st.tty) == (1, 4242, 4242, 34816)
    assert st.start_ticks == int(fields.split()[14])  # field 22; `fields` starts at field 8


def test_parse_cmdline() -> None:
    assert procfs.parse_cmdline(b"bash\0-c\0\0echo hi\0") == ("bash", "-c", "", "echo hi")
    assert procfs.parse_cmdline(b"") == ()
    assert procfs.parse_cmdline(b"sshd: alice@pts/0") == ("sshd: alice@pts/0",)


def test_parse_cgroup_keeps_proc_lines() -> None:
    text = "12:memory:/docker/abc\n0::/system.slice/x.scope\ngarbage\n"
    assert procfs.parse_cgroup(text) == ("12:memory:/docker/abc", "0::/system.slice/x.scope")


def test_loginuid_and_deleted() -> None:
    assert procfs.parse_loginuid("4294967295") == -1
    assert procfs.parse_loginuid("1000\n") == 1000
    assert procfs.parse_loginuid("x") is None
    assert procfs.strip_deleted("/tmp/x (deleted)") == "/tmp/x"


def test_snapshot_of_self_from_real_proc() -> None:
    snap = procfs.read_snapshot(os.getpid())
    assert snap is not None
    assert snap.status.tgid == os.getpid() and snap.exepath and snap.argv
    assert snap.cwd == os.getcwd() and snap.mntns > 0 and snap.cgroups
    assert procfs.read_snapshot(0) is None


def test_boot_clock_maps_boottime_to_now() -> None:
    import time

    clock = procfs.BootClock()
    now = clock.to_wall(time.clock_gettime_ns(time.CLOCK_BOOTTIME))
    assert abs(now - time.time_ns()) < 50_000_000


def test_passwd_and_group_parsing() -> None:
    users = parse_passwd("root:x:0:0:root:/root:/bin/bash\n+nis::::::\nbad line\nbob:x:1001:1001::/home/bob:/bin/sh\n")
    assert set(users) == {0, 1001} and users[1001].home == "/home/bob" and users[1001].shell == "/bin/sh"
    assert parse_group("wheel:x:10:bob\n-x:x:11:\n") == {10: "wheel"}


def test_userdb_host_and_container(tmp_path: Path) -> None:
    host = tmp_path / "host"
    (host / "etc").mkdir(parents=True)
    (host / "etc/passwd").write_text("alice:x:1000:1000::/home/alice:/bin/bash\n")
    (host / "etc/group").write_text("alice:x:1000:\n")
    proc = tmp_path / "proc"
    (proc / "77/root/etc").mkdir(parents=True)
    (proc / "77/root/etc/passwd").write_text("www-data:x:1000:1000::/var/www:/usr/sbin/nologin\n")
    (proc / "77/root/etc/group").write_text("www-data:x:1000:\n")
    db = UserDb(host_mntns=5, proc_root=str(proc), host_root=str(host))
    host_user = db.user(5, 1, 1000)
    assert host_user is not None and host_user.name == "alice"
    ctr_user = db.user(9, 77, 1000)
    assert ctr_user is not None and ctr_user.name == "www-data" and db.group(9, 77, 1000) == "www-data"
    root_user = db.user(9, 77, 0)
    assert root_user is not None and root_user.name == "root"
    assert db.user(5, 1, 4242) is None and db.group(5, 1, 4242) == ""
    # A user added after the first read is found: a miss re-reads the file when it changed.
    with (proc / "77/root/etc/passwd").open("a") as f:
        f.write("late:x:1001:1001::/:/bin/sh\n")
    late = db.user(9, 77, 1001)
    assert late is not None and late.name == "late"
    # The container process went away: the cached table stays usable.
    (proc / "77/root/etc/passwd").unlink()
    db.forget(9)
    assert db.user(9, 77, 1000) is None


def test_cgroup_map(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    (root / "docker/abc").mkdir(parents=True)
    assert find_cgroup2_root("cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n") == "/sys/fs/cgroup/unified"
    cg = CgroupMap(cgroup2_root=str(root), proc_root=str(tmp_path / "proc"))
    ino = (root / "docker/abc").stat().st_ino
    assert cg.id_of(("4:memory:/docker/abc", "0::/docker/abc")) == ino
    # Not learned, process gone: found by walking the v2 tree.
    assert cg.lookup(ino, 12345) == ("0::/docker/abc",)
    cg.learn(ino, ("1:cpu:/docker/abc", "0::/docker/abc"))
    assert cg.lookup(ino, 12345) == ("1:cpu:/docker/abc", "0::/docker/abc")


def test_with_descendants_of_a_real_process_tree() -> None:
    import subprocess

    from collector.source import with_descendants

    child = subprocess.Popen(["bash", "-c", "sleep 5 & wait"])
    try:
        import time

        deadline = time.monotonic() + 5
        found: set[int] = set()
        while time.monotonic() < deadline and len(found) < 3:
            found = with_descendants([os.getpid()]) & (with_descendants([child.pid]) | {os.getpid()})
            time.sleep(0.05)
        assert os.getpid() in found and child.pid in found and len(found) >= 3
    finally:
        child.kill()
        child.wait()
    assert with_descendants([]) == set()


def test_overlay_upperdir() -> None:
    info = (
        "611 540 0:52 / / rw,relatime master:309 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/A:"
        "/var/lib/docker/overlay2/l/B,upperdir=/var/lib/docker/overlay2/abc/diff,workdir=/var/lib/docker/overlay2/abc/work\n"
        "612 611 0:55 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw\n"
    )
    assert procfs.overlay_upperdir(info) == "/var/lib/docker/overlay2/abc/diff"
    assert procfs.overlay_upperdir("25 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n") is None


def test_node_name() -> None:
    import socket

    from collector.source import default_identity, node_name

    assert node_name("node-7") == "node-7"
    assert node_name() == socket.gethostname()  # same UTS namespace as init here
    ident = default_identity("n1")
    assert ident.node == "n1" and len(ident.producer_id) == 32 and ident.boot_id


def test_exe_writable_follows_falco() -> None:
    import os

    from collector.procfs import exe_writable

    def st(uid: int, gid: int, mode: int) -> os.stat_result:
        return os.stat_result((mode, 1, 1, 1, uid, gid, 0, 0, 0, 0))

    dac_override = 1 << 1
    assert exe_writable(st(0, 0, 0o755), 0, 0, dac_override, 0)  # root may write anything writable at all
    assert not exe_writable(st(0, 0, 0o755), 0, 0, dac_override, 1)  # ... but not on a read-only filesystem
    assert not exe_writable(st(0, 0, 0o755), 1000, 1000, 0, 0)  # a user running /usr/bin/cat
    assert exe_writable(st(1000, 1000, 0o755), 1000, 1000, 0, 0)  # a user running their own binary
    assert exe_writable(st(0, 50, 0o775), 1000, 50, 0, 0)  # group-writable
    assert exe_writable(st(0, 0, 0o757), 1000, 1000, 0, 0)  # world-writable
