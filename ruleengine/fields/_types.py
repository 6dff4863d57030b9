# SPDX-License-Identifier: Apache-2.0
"""Field types, descriptors and the bound-field object the compiler and the output formatter share."""

from __future__ import annotations

import enum
import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lanner.text import displayable

if TYPE_CHECKING:
    from ruleengine.fields._context import EventContext

NA = "<NA>"


class FieldType(enum.Enum):
    """Falco's field types, coarse enough for comparisons.

    Values returned by extractors (None = no value for this event):
    STRING/CHAR -> str; INT/UINT/PORT/ABSTIME/RELTIME/ERRNO/MODE -> int; BOOL -> bool; BYTES -> bytes;
    IPADDR -> IPv4Address | IPv6Address. IPNET fields (``fd.net``, ``fd.snet``...) extract the *address* to test
    and parse their literals into networks: ``=``/``in`` then mean "address inside the network".
    """

    STRING = "string"
    CHAR = "char"
    INT = "int64"
    UINT = "uint64"
    BOOL = "bool"
    IPADDR = "ipaddr"
    IPNET = "ipnet"
    PORT = "port"
    ABSTIME = "abstime"
    RELTIME = "reltime"
    BYTES = "bytebuf"
    ERRNO = "errno"
    MODE = "mode"


NUMERIC_TYPES = frozenset(
    {
        FieldType.INT,
        FieldType.UINT,
        FieldType.PORT,
        FieldType.ABSTIME,
        FieldType.RELTIME,
        FieldType.ERRNO,
        FieldType.MODE,
    }
)


class ArgKind(enum.Enum):
    """Whether a field takes a ``[arg]``."""

    NONE = "none"
    OPTIONAL = "optional"
    REQUIRED = "required"


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """Static description of one field, as ``lanner fields`` lists it."""

    name: str
    type: FieldType
    description: str
    source: str
    arg: ArgKind = ArgKind.NONE
    arg_form: str = "any"  # "index", "key" or "any"
    is_list: bool = False
    filter_only: bool = False
    no_rhs: bool = False
    deprecated: bool = False


class UnknownFieldError(LookupError):
    """The field name does not exist for the source."""

    def __init__(self, name: str, source: str = "") -> None:
        self.name = name
        self.source = source
        super().__init__(f"unknown field '{name}'" + (f" for source '{source}'" if source else ""))

    def __str__(self) -> str:
        return str(self.args[0])


class FieldArgError(ValueError):
    """A field's ``[arg]`` is missing, not allowed or malformed."""


Extractor = Callable[["EventContext"], object]


def _printable(data: bytes) -> str:
    # Falco prints buffers keeping printable ASCII and turning every other byte into '.'.
    return "".join(chr(b) if 32 <= b < 127 else "." for b in data)


def render_value(value: object) -> str:
    """Falco's text rendering of one extracted value; ``<NA>`` for None. Bytes of a string that are not UTF-8
    render as U+FFFD, as in Falco's JSON; raw buffers keep printable ASCII and show the rest as ``.``."""
    if value is None:
        return NA
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return displayable(value)
    if isinstance(value, bytes):
        return _printable(value)
    if isinstance(value, tuple):
        return "(" + ",".join(render_value(v) for v in value) + ")"
    return str(value)


def json_value(value: object) -> object:
    """Falco's JSON typing of one extracted value: str, int, bool, None or a list."""
    if isinstance(value, str):
        return displayable(value)
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, bytes):
        return _printable(value)
    if isinstance(value, tuple):
        return [json_value(v) for v in value]
    return str(value)


def _parse_int(text: str) -> int:
    t = text.strip()
    try:
        if t.lower().startswith(("0x", "-0x", "+0x")):
            return int(t, 16)
        return int(t, 10)
    except ValueError:
        raise ValueError(f"'{text}' is not a valid number") from None


def parse_literal(ftype: FieldType, text: str) -> object:
    """Turn a condition literal into a value comparable with what the field extracts."""
    if ftype in (FieldType.STRING, FieldType.CHAR):
        return text
    if ftype is FieldType.BOOL:
        if text == "true":
            return True
        if text == "false":
            return False
        raise ValueError(f"'{text}' is not a valid boolean (true/false)")
    if ftype is FieldType.MODE:
        t = text.strip()
        if len(t) > 1 and t.startswith("0") and t.isdigit():
            return int(t, 8)
        return _parse_int(t)
    if ftype in NUMERIC_TYPES:
        return _parse_int(text)
    if ftype is FieldType.IPADDR:
        try:
            return ipaddress.ip_address(text.strip())
        except ValueError:
            raise ValueError(f"'{text}' is not a valid IP address") from None
    if ftype is FieldType.IPNET:
        try:
            return ipaddress.ip_network(text.strip(), strict=False)
        except ValueError:
            raise ValueError(f"'{text}' is not a valid IP network") from None
    if ftype is FieldType.BYTES:
        return text.encode("utf-8", "surrogateescape")
    raise ValueError(f"cannot parse a literal for type {ftype.value}")


@dataclass(frozen=True, slots=True, eq=False)
class BoundField:
    """A field with its argument resolved, ready to extract from an EventContext.

    ``any_of`` marks Falco's index-less ancestor fields (``proc.aname``, ``proc.aexe``...): ``extract`` then returns
    a tuple of the ancestors' values, a condition holds when *any* element satisfies the operator, and outputs
    print the elements joined by one space.
    """

    info: FieldInfo
    arg: str | None
    token: str
    extract: Extractor
    any_of: bool = False

    def render(self, value: object | None) -> str:
        """Falco text rendering, ``<NA>`` for None."""
        if self.any_of and isinstance(value, tuple):
            return " ".join(render_value(v) for v in value) if value else NA
        return render_value(value)

    def to_json(self, value: object | None) -> object:
        """Falco JSON typing (str/int/bool/None/list)."""
        if self.any_of and isinstance(value, tuple):
            return " ".join(render_value(v) for v in value) if value else None
        return json_value(value)

    def parse_literal(self, text: str) -> object:
        """Condition literal -> typed value; ValueError when it does not fit the field's type."""
        return parse_literal(self.info.type, text)

    def __repr__(self) -> str:
        return f"BoundField({self.token!r})"


def dump_json(value: object) -> str:
    """Compact JSON as Falco's plugins print nested objects."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
