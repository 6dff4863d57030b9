# SPDX-License-Identifier: Apache-2.0
"""``kubectl exec`` attribution: which Kubernetes user opened the session a process belongs to.

Two observations meet here. The API server's audit log records a ``pods/exec`` request: who (user, groups), into
which pod and container, running what command. On the node, the runtime's exec path (runc under the containerd
shim, conmon for CRI-O and Podman) starts that command as a new process in the container. Neither knows the other:
the audit event has no pid, the process has no user. They are joined on (namespace, pod, container, command) within
a short window of each other's timestamps, whichever arrives first. The process and every descendant (children are
recognised by their parent pid) then carry ``k8s.exec.user`` and ``k8s.exec.groups``.

A process counts as an exec session's first process when it execs in a pod's container while its parent is the
runtime's exec helper (runc/crun) or the shim itself. The container's own entrypoint starts the same way, so a
session is only ever attributed through a matching audit request, never by its position alone.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from lanner.model import SOURCE_K8S_AUDIT
from lanner.text import from_bytes
from lanner.v1 import event_pb2

WINDOW_NS = 10_000_000_000
_EXEC_TYPES = frozenset({"execve", "execveat"})
_EXEC_HELPERS = frozenset({"runc", "crun", "runc:[1:CHILD]", "runc:[2:INIT]", "containerd-shim", "conmon"})
_MAX_TRACKED = 65536
_Key = tuple[str, int]  # (node, pid): one enricher may serve several nodes


@dataclass(frozen=True, slots=True)
class ExecRequest:
    """A ``pods/exec`` request from the audit log; ``container`` is empty when the request named none."""

    namespace: str
    pod: str
    container: str
    command: tuple[str, ...]
    user: str
    groups: tuple[str, ...]
    ts_ns: int
    audit_id: str


@dataclass(frozen=True, slots=True)
class Who:
    """The Kubernetes user behind a session."""

    user: str
    groups: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Session:
    """An exec session's first process, not yet matched with an audit request."""

    key: _Key
    namespace: str
    pod: str
    container: str
    argv: tuple[str, ...]
    ts_ns: int


def parse_exec_request(audit_json: str, ts_ns: int) -> ExecRequest | None:
    """The exec request in one audit event (``audit.k8s.io/v1`` Event JSON), or None for any other request."""
    if '"exec"' not in audit_json:
        return None
    try:
        item = json.loads(audit_json)
    except ValueError:
        return None
    ref = item.get("objectRef") or {}
    if ref.get("resource") != "pods" or ref.get("subresource") != "exec":
        return None
    status = (item.get("responseStatus") or {}).get("code")
    if isinstance(status, int) and status >= 400:
        return None  # refused: no process was started
    query = parse_qs(urlsplit(str(item.get("requestURI") or "")).query)
    user = item.get("user") or {}
    return ExecRequest(
        namespace=str(ref.get("namespace") or ""),
        pod=str(ref.get("name") or ""),
        container=(query.get("container") or [""])[0],
        command=tuple(query.get("command") or ()),
        user=str(user.get("username") or ""),
        groups=tuple(str(g) for g in user.get("groups") or ()),
        ts_ns=ts_ns,
        audit_id=str(item.get("auditID") or ""),
    )


def _matches(req: ExecRequest, s: _Session) -> bool:
    if (req.namespace, req.pod) != (s.namespace, s.pod) or abs(req.ts_ns - s.ts_ns) > WINDOW_NS:
        return False
    if req.container and req.container != s.container:
        return False
    # The runtime runs the command as given: argv[0] may be a bare name resolved through PATH.
    return not req.command or req.command == s.argv


class ExecSessions:
    """Joins audit ``pods/exec`` requests with the processes they started. Processes are keyed by (node, pid); the
    adapters below feed it from events (``observe``) or from a batch frame (enricher.kexec_frame)."""

    def __init__(self, window_ns: int = WINDOW_NS) -> None:
        self.window_ns = window_ns
        self._who: dict[_Key, Who] = {}
        self._tree: dict[_Key, _Key] = {}  # process -> first process of its not-yet-attributed session
        self._sessions: dict[_Key, _Session] = {}
        self._requests: list[ExecRequest] = []
        self._audit_ids: OrderedDict[str, None] = OrderedDict()
        self.attributed = 0  # sessions matched so far

    @property
    def active(self) -> bool:
        """Whether any process is attributed or waiting for its audit request."""
        return bool(self._who or self._tree)

    # ---- the three facts it learns -----------------------------------------------------------------------

    def audit(self, audit_json: str, ts_ns: int) -> None:
        """An audit event: when it is a pods/exec request, attribute its session (now or when it shows up)."""
        req = parse_exec_request(audit_json, ts_ns)
        if req is None or not req.user:
            return
        if req.audit_id:
            # The API server reports one request at several stages (ResponseStarted, ResponseComplete).
            if req.audit_id in self._audit_ids:
                return
            self._audit_ids[req.audit_id] = None
            if len(self._audit_ids) > _MAX_TRACKED:
                self._audit_ids.popitem(last=False)
        for s in list(self._sessions.values()):
            if _matches(req, s):
                self._attribute(s, Who(req.user, req.groups))
                return
        self._requests.append(req)
        self._expire(req.ts_ns)

    def exec(
        self,
        key: _Key,
        parent: _Key,
        argv: tuple[str, ...],
        parent_comm: str,
        parent_exepath: str,
        where: tuple[str, str, str],
        ts_ns: int,
    ) -> Who | None:
        """A process exec'd ``argv`` in a pod's container ``where`` = (namespace, pod, container); returns who
        opened its session when known."""
        who = self.who(key, parent)
        if who is not None:
            return who
        if key in self._tree and key not in self._sessions:
            return None  # a descendant of a session still waiting for its request
        if not where[1]:
            return None
        helper = parent_comm in _EXEC_HELPERS or parent_exepath.rsplit("/", 1)[-1] in ("runc", "crun")
        if not helper and not parent_comm.startswith("containerd-shim"):
            return None
        s = _Session(key, where[0], where[1], where[2], argv, ts_ns)
        for i, req in enumerate(self._requests):
            if _matches(req, s):
                del self._requests[i]
                who = Who(req.user, req.groups)
                self._who[key] = who
                self._tree.pop(key, None)
                self._sessions.pop(key, None)
                self.attributed += 1
                return who
        self._sessions[key] = s  # (again, when the runtime's helper exec'd the command in place)
        self._tree[key] = key
        self._expire(ts_ns)
        return None

    def who(self, key: _Key, parent: _Key) -> Who | None:
        """Who opened the session of a process: its own attribution, else its parent's (inherited from now on)."""
        who = self._who.get(key)
        if who is not None or not (self._who or self._tree):
            return who
        who = self._who.get(parent)
        if who is not None:
            if len(self._who) < _MAX_TRACKED:
                self._who[key] = who
            return who
        root = self._tree.get(parent)
        if root is not None and key not in self._tree and len(self._tree) < _MAX_TRACKED:
            self._tree[key] = root
        return None

    def exited(self, key: _Key) -> None:
        """The process is gone (its pid may be reused)."""
        self._who.pop(key, None)
        if self._tree.pop(key, None) is not None:
            self._sessions.pop(key, None)

    # ---- events carrying their processes inline ----------------------------------------------------------

    def observe(self, events: Sequence[event_pb2.Event]) -> None:
        """Learn from and annotate one batch of events (in order)."""
        for ev in events:
            if ev.source == SOURCE_K8S_AUDIT:
                self.audit(ev.audit_json, ev.timing.event_ns)
                continue
            if ev.source and ev.source != "syscall":
                continue
            proc = ev.proc
            node = ev.id.node
            key, parent = (node, proc.pid), (node, proc.ppid)
            if ev.type in _EXEC_TYPES and ev.res == 0 and ev.ancestors:
                anc = ev.ancestors[0]
                where = (ev.k8s.ns_name, ev.k8s.pod_name, ev.container.name)
                argv = tuple(from_bytes(a) for a in (proc.exe, *proc.args))
                who = self.exec(
                    key, parent, argv, from_bytes(anc.comm), from_bytes(anc.exepath), where, ev.timing.event_ns
                )
            else:
                who = self.who(key, parent)
            if who is not None:
                ev.k8s.exec_user = who.user
                del ev.k8s.exec_groups[:]
                ev.k8s.exec_groups.extend(who.groups)
            if ev.type == "procexit" and proc.tid == proc.pid:
                self.exited(key)

    # ---- internals ---------------------------------------------------------------------------------------

    def _attribute(self, s: _Session, who: Who) -> None:
        """An audit request matched a session seen earlier: its whole process tree is that user's from now on."""
        self._sessions.pop(s.key, None)
        for key in [k for k, root in self._tree.items() if root == s.key]:
            del self._tree[key]
            self._who[key] = who
        self.attributed += 1

    def _expire(self, now_ns: int) -> None:
        horizon = now_ns - self.window_ns
        self._requests = [r for r in self._requests if r.ts_ns >= horizon]
        for key in [k for k, s in self._sessions.items() if s.ts_ns < horizon]:
            del self._sessions[key]
            for child in [c for c, root in self._tree.items() if root == key]:
                del self._tree[child]
