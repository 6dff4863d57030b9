# SPDX-License-Identifier: Apache-2.0
"""user.* and group.*: effective ids, synthesised root, the literal '<NA>' string."""

from __future__ import annotations

from lanner.model import Event, Process
from tests.ruleengine.fields_util import value


def ev(**kw: object) -> Event:
    return Event(type="open", proc=Process(comm="x", **kw))  # type: ignore[arg-type]


def test_names_from_the_collector() -> None:
    e = ev(
        uid=1000,
        gid=1000,
        user_name="alice",
        user_homedir="/home/alice",
        user_shell="/bin/zsh",
        group_name="staff",
        loginuid=1000,
        loginuser_name="alice",
    )
    assert value(e, "user.uid") == 1000 and value(e, "user.name") == "alice"
    assert value(e, "user.homedir") == "/home/alice" and value(e, "user.shell") == "/bin/zsh"
    assert value(e, "group.gid") == 1000 and value(e, "group.name") == "staff"
    assert value(e, "user.loginuid") == 1000 and value(e, "user.loginname") == "alice"


def test_effective_ids_win() -> None:
    e = ev(uid=1000, euid=0, gid=1000, egid=0)
    assert value(e, "user.uid") == 0 and value(e, "user.name") == "root"
    assert value(e, "group.gid") == 0 and value(e, "group.name") == "root"


def test_unknown_names() -> None:
    root = ev(uid=0, gid=0)
    assert value(root, "user.name") == "root" and value(root, "user.homedir") == "/root"
    assert value(root, "user.shell") == "<NA>"
    other = ev(uid=4242, gid=4242)
    assert value(other, "user.name") == "<NA>"  # a real string value, not "no value"
    assert value(other, "group.name") == "<NA>"


def test_loginuid() -> None:
    assert value(ev(loginuid=0xFFFFFFFF), "user.loginuid") == -1
    assert value(ev(), "user.loginuid") == -1
    assert value(ev(loginuid=0xFFFFFFFF), "user.loginname") == "<NA>"
    assert value(ev(loginuid=0), "user.loginname") == "root"
