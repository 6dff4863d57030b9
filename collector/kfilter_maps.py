# SPDX-License-Identifier: Apache-2.0
"""The kernel filter's map contents for one ``KernelSpec``, computed in Python (tested without a kernel): which
syscalls can be filtered and their slots, the exact/prefix/suffix path tables, the comm and port tables, the numeric
atoms, the clauses per slot, and the exact-path Bloom filter. ``collector.kfilter.KernelControl`` writes them."""

from __future__ import annotations

from collections.abc import Iterable

from collector import layout
from lanner.v1 import kfilter_pb2

# The syscalls the probes can filter, with their slot (LANNER_SC_*). chdir and fchdir are missing on purpose: they
# move the cwd, which the process table must follow.
_FILTERABLE = (
    "open",
    "openat",
    "openat2",
    "creat",
    "open_by_handle_at",
    "connect",
    "accept",
    "accept4",
    "socket",
    "sendto",
    "sendmsg",
    "unlink",
    "unlinkat",
    "rename",
    "renameat",
    "renameat2",
    "mkdir",
    "mkdirat",
    "rmdir",
    "chmod",
    "fchmod",
    "fchmodat",
    "symlink",
    "symlinkat",
    "link",
    "linkat",
)
SLOTS: dict[str, int] = {name: getattr(layout, "SC_" + name.upper()) for name in _FILTERABLE}
KF_SLOTS = 128
KF_PATH_ARGS = 3
KF_MAX_CLAUSES = 64
KF_MAX_NUM = 64
PATH_KEY = 256
SUFFIX_KEY = 64
PATH_KINDS = {1: "exact", 2: "prefix", 3: "suffix", 12: "pmatch"}
COMM, RAW_DOTDOT, FAMILY, SPORT = 4, 9, 10, 11
NUM_KINDS = frozenset({5, 6, 7, 8, FAMILY})
OPS = {"=": 0, "!=": 1, "<": 2, "<=": 3, ">": 4, ">=": 5}


def closure(entries: dict[bytes, int]) -> dict[bytes, int]:
    """For trie entries: each key's mask ORed with the masks of every shorter key that is a prefix of it, since a
    longest-prefix lookup returns one entry for all the prefixes a string has."""
    return {k: m | _prefix_masks(k, entries) for k, m in entries.items()}


def _prefix_masks(key: bytes, entries: dict[bytes, int]) -> int:
    out = 0
    for other, m in entries.items():
        if len(other) < len(key) and key.startswith(other):
            out |= m
    return out


class KernelFilterMaps:
    """The map contents for one spec, computed in Python (tested without a kernel)."""

    def __init__(self, spec: kfilter_pb2.KernelSpec) -> None:
        self.exact: dict[bytes, int] = {}
        prefix: dict[bytes, int] = {}
        suffix: dict[bytes, int] = {}
        self.comm: dict[bytes, int] = {}
        self.sport: dict[int, int] = {}
        self.masks = {"comm": 0, "dotdot": 0, "exact_mask": 0, "sport": 0}
        # Per path argument (0: an open's path, 1 and 2: a file operation's paths): the bits of its path atoms.
        self.path_masks = [{"exact": 0, "prefix": 0, "suffix": 0, "pmatch": 0} for _ in range(KF_PATH_ARGS)]
        self.num: list[tuple[int, int, int, int]] = []  # kind, op, value, bit
        for i, a in enumerate(spec.atoms[:64]):
            bit = 1 << i
            if a.exact:
                self.masks["exact_mask"] |= bit
            kind = PATH_KINDS.get(a.kind)
            if kind is not None:
                if a.arg >= KF_PATH_ARGS:
                    continue  # never true or false: its clauses are only weaker
                self.path_masks[a.arg][kind] |= bit
                target = {"exact": self.exact, "prefix": prefix, "suffix": suffix, "pmatch": prefix}[kind]
                for s in a.strings:
                    b = s.encode()
                    if kind == "suffix":
                        b = b[::-1]
                    if len(b) >= (SUFFIX_KEY + 1 if kind == "suffix" else PATH_KEY - 1):
                        continue  # no judgeable path can match it (suffixes this long never reach the spec)
                    target[b] = target.get(b, 0) | bit
            elif a.kind == COMM:
                self.masks["comm"] |= bit
                for s in a.strings:
                    b = s.encode()
                    if 0 < len(b) <= 15:
                        self.comm[b] = self.comm.get(b, 0) | bit
            elif a.kind == RAW_DOTDOT:
                self.masks["dotdot"] |= bit
            elif a.kind == SPORT:
                self.masks["sport"] |= bit
                for s in a.strings:
                    port = int(s)
                    self.sport[port] = self.sport.get(port, 0) | bit
            elif a.kind == FAMILY and len(self.num) < KF_MAX_NUM:
                fams = 0
                for s in a.strings:
                    fams |= 1 << int(s)
                self.num.append((a.kind, 0, fams, bit))
            elif a.kind in NUM_KINDS and len(self.num) < KF_MAX_NUM:
                self.num.append((a.kind, OPS.get(a.op, 0), a.number, bit))
        self.prefix = closure(prefix)
        self.suffix = closure(suffix)
        self.clauses: dict[int, list[tuple[int, int]]] = {}
        for tf in spec.filters:
            if tf.event_type not in SLOTS or len(tf.clauses) > KF_MAX_CLAUSES:
                continue
            out = []
            for c in tf.clauses:
                out.append((_bits(c.true_atoms), _bits(c.false_atoms)))
            self.clauses[SLOTS[tf.event_type]] = out


BLOOM_WORDS = 64


def bloom_bit(path: bytes) -> tuple[int, int]:
    """(word, bit) of ``path`` in kf_exact_bloom: a hash of its length and last four bytes, as kf_exact_maybe."""
    w = int.from_bytes(path[-4:], "big")
    h = ((w * 0x9E3779B1) ^ (len(path) * 0x85EBCA77)) & 0xFFFFFFFF
    return h >> 26, (h >> 20) & 63


def exact_bloom(paths: Iterable[bytes]) -> list[int]:
    """The words of kf_exact_bloom for these exact paths."""
    words = [0] * BLOOM_WORDS
    for p in paths:
        word, bit = bloom_bit(p)
        words[word] |= 1 << bit
    return words


def _bits(idx: Iterable[int]) -> int:
    m = 0
    for i in idx:
        if i < 64:
            m |= 1 << i
    return m
