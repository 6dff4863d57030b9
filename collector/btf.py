# SPDX-License-Identifier: Apache-2.0
"""A small reader of the kernel's BTF (``/sys/kernel/btf/vmlinux``): struct member offsets, type sizes, enum values.

The probes read a few kernel structs (the exec'd file's inode, the task's credentials...). Offsets from the apt
headers are wrong on a newer kernel, so they are taken from the running kernel's own type information here and
passed to bcc as ``-D`` constants. Only what that needs is parsed: names, sizes, struct/union members (through
anonymous members), typedef/qualifier chains, arrays and enums. Module BTF (``/sys/kernel/btf/<module>``) is
"split" BTF continuing the vmlinux type ids and strings; ``Btf.load(path, base)`` reads it on top of vmlinux.

Format: include/uapi/linux/btf.h (kernel documentation, Documentation/bpf/btf.rst).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

VMLINUX = Path("/sys/kernel/btf/vmlinux")
MAGIC = 0xEB9F

KIND_INT = 1
KIND_PTR = 2
KIND_ARRAY = 3
KIND_STRUCT = 4
KIND_UNION = 5
KIND_ENUM = 6
KIND_FWD = 7
KIND_TYPEDEF = 8
KIND_VOLATILE = 9
KIND_CONST = 10
KIND_RESTRICT = 11
KIND_FUNC = 12
KIND_FUNC_PROTO = 13
KIND_VAR = 14
KIND_DATASEC = 15
KIND_FLOAT = 16
KIND_DECL_TAG = 17
KIND_TYPE_TAG = 18
KIND_ENUM64 = 19

# Bytes of kind-specific data after the 12-byte common header: (fixed, per vlen item).
_EXTRA = {
    KIND_INT: (4, 0),
    KIND_ARRAY: (12, 0),
    KIND_STRUCT: (0, 12),
    KIND_UNION: (0, 12),
    KIND_ENUM: (0, 8),
    KIND_FUNC_PROTO: (0, 8),
    KIND_VAR: (4, 0),
    KIND_DATASEC: (0, 12),
    KIND_DECL_TAG: (4, 0),
    KIND_ENUM64: (0, 12),
}
_SKIP = (KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_TYPE_TAG)


class BtfError(Exception):
    """The BTF blob is malformed, or a type or member asked for is not in it."""


@dataclass(frozen=True, slots=True)
class Member:
    """A struct/union member: ``bit_offset`` from the start of the struct, ``type_id`` its type."""

    name: str
    type_id: int
    bit_offset: int
    bitfield_size: int


@dataclass(frozen=True, slots=True)
class BtfType:
    """One type record."""

    kind: int
    name: str
    size_or_type: int  # size for INT/STRUCT/UNION/ENUM/FLOAT, referenced type id for PTR/TYPEDEF/qualifiers
    members: tuple[Member, ...] = ()
    enum_values: tuple[tuple[str, int], ...] = ()
    array: tuple[int, int] = (0, 0)  # (element type id, number of elements)


class Btf:
    """Parsed BTF: types by id, with lookup by (kind, name)."""

    def __init__(self, types: list[BtfType | None], strings: bytes = b"") -> None:
        self.types = types
        self.strings = strings  # the string section, base strings first for split BTF
        self._by_name: dict[tuple[int, str], int] = {}
        for tid, t in enumerate(types):
            if t is not None and t.name:
                self._by_name.setdefault((t.kind, t.name), tid)

    @classmethod
    def load(cls, path: Path | str = VMLINUX, base: Btf | None = None) -> Btf:
        """Read and parse a BTF file (module BTF on top of ``base``)."""
        data = Path(path).read_bytes()
        types, strings = parse(data, base, str(path))
        return cls(types, strings)

    def find(self, name: str, kind: int = KIND_STRUCT) -> int:
        """Type id of a named type; raises BtfError when absent."""
        tid = self._by_name.get((kind, name))
        if tid is None:
            raise BtfError(f"type {name!r} not in BTF")
        return tid

    def has(self, name: str, kind: int = KIND_STRUCT) -> bool:
        """Whether a named type is present."""
        return (kind, name) in self._by_name

    def resolve(self, tid: int) -> int:
        """Follow typedefs and qualifiers to the underlying type id."""
        for _ in range(64):
            t = self.types[tid]
            if t is None or t.kind not in _SKIP:
                return tid
            tid = t.size_or_type
        raise BtfError(f"type chain too long at id {tid}")

    def size(self, tid: int) -> int:
        """Size in bytes of a type."""
        tid = self.resolve(tid)
        t = self.types[tid]
        if t is None:
            raise BtfError("void has no size")
        if t.kind == KIND_PTR:
            return 8
        if t.kind == KIND_ARRAY:
            return self.size(t.array[0]) * t.array[1]
        return t.size_or_type

    def member(self, tid: int, name: str) -> Member:
        """A member of a struct/union by name, looking inside anonymous members; the offset is from ``tid``."""
        t = self.types[self.resolve(tid)]
        if t is None or t.kind not in (KIND_STRUCT, KIND_UNION):
            raise BtfError(f"type id {tid} is not a struct or union")
        for m in t.members:
            if m.name == name:
                return m
        for m in t.members:
            if not m.name:
                try:
                    inner = self.member(m.type_id, name)
                except BtfError:
                    continue
                return Member(inner.name, inner.type_id, m.bit_offset + inner.bit_offset, inner.bitfield_size)
        raise BtfError(f"{t.name or 'anonymous'} has no member {name!r}")

    def offset(self, struct_name: str, path: str) -> int:
        """Byte offset of a dotted member path (``"f_path.dentry"``) in ``struct struct_name``."""
        tid = self.find(struct_name)
        off = 0
        for part in path.split("."):
            m = self.member(tid, part)
            if m.bitfield_size or m.bit_offset % 8:
                raise BtfError(f"{struct_name}.{path} is a bitfield")
            off += m.bit_offset // 8
            tid = m.type_id
        return off

    def member_type(self, struct_name: str, path: str) -> int:
        """Resolved type id of a dotted member path."""
        tid = self.find(struct_name)
        for part in path.split("."):
            tid = self.member(tid, part).type_id
        return self.resolve(tid)

    def enum_value(self, enum_name: str, value_name: str) -> int:
        """Value of one enumerator of a named enum."""
        for kind in (KIND_ENUM, KIND_ENUM64):
            if self.has(enum_name, kind):
                t = self.types[self.find(enum_name, kind)]
                assert t is not None
                for n, v in t.enum_values:
                    if n == value_name:
                        return v
        raise BtfError(f"enum {enum_name} has no {value_name}")


def parse(data: bytes, base: Btf | None = None, where: str = "btf") -> tuple[list[BtfType | None], bytes]:
    """Parse a raw BTF blob into a list indexed by type id (id 0 is void), and its strings. Split BTF (``base``
    given) continues the base's type ids, and its string offsets continue the base's string section."""
    if len(data) < 24:
        raise BtfError(f"{where}: too short for a BTF header")
    magic, _version, _flags, hdr_len = struct.unpack_from("<HBBI", data, 0)
    if magic != MAGIC:
        raise BtfError(f"{where}: bad magic {magic:#x} (big-endian BTF is not supported)")
    type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", data, 8)
    types_start = hdr_len + type_off
    strs = data[hdr_len + str_off : hdr_len + str_off + str_len]
    types: list[BtfType | None] = [None]
    if base is not None:
        types = list(base.types)
        strs = base.strings + strs

    def name_at(off: int) -> str:
        end = strs.find(b"\0", off)
        return strs[off : end if end >= 0 else len(strs)].decode("utf-8", "replace")

    pos = types_start
    end = types_start + type_len
    if end > len(data):
        raise BtfError(f"{where}: type section past end of data")
    while pos < end:
        name_off, info, size_or_type = struct.unpack_from("<III", data, pos)
        pos += 12
        kind = (info >> 24) & 0x1F
        vlen = info & 0xFFFF
        kind_flag = info >> 31
        fixed, per = _EXTRA.get(kind, (0, 0))
        if kind < KIND_INT or kind > KIND_ENUM64:
            raise BtfError(f"{where}: unknown BTF kind {kind} at byte {pos - 12}")
        name = name_at(name_off)
        members: tuple[Member, ...] = ()
        enums: tuple[tuple[str, int], ...] = ()
        array = (0, 0)
        if kind in (KIND_STRUCT, KIND_UNION):
            ms = []
            for i in range(vlen):
                m_name, m_type, m_off = struct.unpack_from("<III", data, pos + 12 * i)
                bits = m_off >> 24 if kind_flag else 0
                bit_off = m_off & 0xFFFFFF if kind_flag else m_off
                ms.append(Member(name_at(m_name), m_type, bit_off, bits))
            members = tuple(ms)
        elif kind == KIND_ENUM:
            signed = bool(kind_flag)
            enums = tuple(
                (name_at(n), struct.unpack("<i" if signed else "<I", struct.pack("<I", v))[0])
                for n, v in (struct.unpack_from("<II", data, pos + 8 * i) for i in range(vlen))
            )
        elif kind == KIND_ENUM64:
            enums = tuple(
                (name_at(n), lo | hi << 32)
                for n, lo, hi in (struct.unpack_from("<III", data, pos + 12 * i) for i in range(vlen))
            )
        elif kind == KIND_ARRAY:
            elem, _index, nelems = struct.unpack_from("<III", data, pos)
            array = (elem, nelems)
        pos += fixed + per * vlen
        types.append(BtfType(kind, name, size_or_type, members, enums, array))
    return types, strs


def load_vmlinux(path: Path | str = VMLINUX) -> Btf | None:
    """The running kernel's BTF, or None when the kernel has none (or it cannot be read)."""
    try:
        return Btf.load(path)
    except (OSError, BtfError):
        return None
