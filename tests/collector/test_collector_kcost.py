# SPDX-License-Identifier: Apache-2.0
"""The exact-path Bloom filter of the open filter (kf_exact_bloom): every exact path of a spec has its bit set, the
Python hash is the C one, and the C constants agree. Its agreement with the probe on real opens is checked by the
live C-vs-Python test of the filter (tests/collector/test_collector_kfilter_live.py)."""

from __future__ import annotations

import re
from pathlib import Path

from collector.kfilter import BLOOM_WORDS, bloom_bit, exact_bloom

ROOT = Path(__file__).resolve().parents[2]


def _c_hash(path: bytes) -> tuple[int, int]:
    """kf_exact_maybe's hash, step by step as the probe computes it (u32 arithmetic, w built byte by byte)."""
    w = 0
    for c in path:
        w = ((w << 8) | c) & 0xFFFFFFFF
    h = ((w * 0x9E3779B1) & 0xFFFFFFFF) ^ ((len(path) * 0x85EBCA77) & 0xFFFFFFFF)
    return h >> 26, (h >> 20) & 63


def test_bloom_hash_is_the_probe_hash() -> None:
    for p in (b"/", b"/a", b"/etc", b"/etc/shadow", b"/etc/security/pwquality.conf", b"/x" * 120):
        assert bloom_bit(p) == _c_hash(p)


def test_every_exact_path_has_its_bit() -> None:
    paths = [b"/etc/shadow", b"/etc/sudoers", b"/etc/pam.conf", b"/root/.ssh/authorized_keys"]
    words = exact_bloom(paths)
    assert len(words) == BLOOM_WORDS
    for p in paths:
        word, bit = bloom_bit(p)
        assert words[word] >> bit & 1
    assert sum(bin(w).count("1") for w in words) <= len(paths)
    assert exact_bloom([]) == [0] * BLOOM_WORDS


def test_probe_constants_match() -> None:
    src = (ROOT / "bpf" / "lanner.bpf.c").read_text()
    assert int(re.search(r"^#define KF_BLOOM_WORDS (\d+)", src, re.M).group(1)) == BLOOM_WORDS  # type: ignore[union-attr]
    assert "(w * 0x9E3779B1U) ^ (len * 0x85EBCA77U)" in src
    assert "h >> 26" in src and "(h >> 20) & 63" in src


def test_nothing_deletes_fd_marks() -> None:
    """The per-CPU mark cache (mark_cached in bpf/lanner.bpf.c) skips the lookup of a mark it kept while nothing was
    inserted into kf_stale_fd or fd_closed: sound only while an insert (and the LRU eviction it may cause) is the only
    way an entry leaves them. Every insert must bump mark_inserts, and nothing may delete from them."""
    program = (ROOT / "bpf" / "lanner.bpf.c").read_text()
    for name in ("kf_stale_fd", "fd_closed"):
        assert f"{name}.delete" not in program
        assert program.count(f"{name}.update(") == 1
        i = program.index(f"{name}.update(")
        assert "mark_inserted();" in program[i - 120 : i], name
    py = "\n".join(p.read_text() for p in (ROOT / "collector").glob("*.py"))
    assert not re.search(r"""\[b["'](kf_stale_fd|fd_closed)["']\]\s*\.\s*(clear|pop|__delitem__)""", py)
    assert not re.search(r"""del\s+\S*\[b["'](kf_stale_fd|fd_closed)["']\]""", py)
