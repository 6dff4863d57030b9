# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

from lanner import model
from lanner.convert import event_from_pb, event_from_view, event_to_pb
from lanner.v1 import event_pb2


def sample() -> model.Event:
    return model.Event(
        type="openat",
        res=3,
        identity=model.EventIdentity("n", "b", 7, "p"),
        timing=model.EventTiming(1, 2, 3, 4),
        proc=model.Process(pid=5, comm="cat", args=("/etc/shadow",), uid=0, cap_effective=0, loginuid=-1),
        ancestors=(model.Process(pid=1, comm="bash"), model.Process(pid=0, comm="sshd")),
        fd=model.Fd(num=3, type=model.FdType.FILE, path="/etc/shadow", open_flags=0),
        args=(model.Arg("flags", 0), model.Arg("name", "/etc/shadow"), model.Arg("dirfd", -100)),
        container=model.Container(
            id="abc123abc123",
            labels={"a": "b"},
            privileged=False,
            mounts=(model.Mount("/h", "/c", "", True, "rprivate"),),
        ),
        k8s=model.K8s(pod_name="web", ns_name="shop", pod_labels={"app": "web"}),
    )


def test_round_trip_keeps_every_fact_including_unset_and_zero_values() -> None:
    ev = sample()
    back = event_from_pb(event_to_pb(ev))
    assert back == ev
    assert back.proc.gid is None and back.proc.uid == 0 and back.fd is not None and back.fd.mode is None


def test_host_process_and_no_fd() -> None:
    ev = model.Event(type="execve", proc=model.Process(pid=9, comm="ls"))
    back = event_from_pb(event_to_pb(ev))
    assert back.container is model.HOST_CONTAINER and back.k8s is model.NO_K8S and back.fd is None


def test_repeated_parts_are_decoded_once() -> None:
    a, b = event_from_pb(event_to_pb(sample())), event_from_pb(event_to_pb(sample()))
    assert a.proc is b.proc and a.ancestors[0] is b.ancestors[0] and a.fd is b.fd and a.container is b.container
    changed = sample()
    changed.proc.cwd = "/tmp/"
    assert event_from_pb(event_to_pb(changed)).proc is not a.proc


def test_view_decodes_what_the_full_message_decodes() -> None:
    for ev in (sample(), model.Event(type="execve", proc=model.Process(pid=9, comm="ls"))):
        data = event_to_pb(ev).SerializeToString()
        view = event_from_view(event_pb2.EventView.FromString(data))
        assert view == event_from_pb(event_pb2.Event.FromString(data)) == ev
    fdless = event_to_pb(model.Event(type="execve")).SerializeToString()
    assert event_from_view(event_pb2.EventView.FromString(fdless)).fd is None
    empty_fd = event_to_pb(model.Event(type="close", fd=model.Fd())).SerializeToString()
    assert event_from_view(event_pb2.EventView.FromString(empty_fd)).fd == model.Fd()
