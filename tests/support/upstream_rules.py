# SPDX-License-Identifier: Apache-2.0
"""Where the tests find the upstream Falco rules, and ``make upstream-rules`` to fetch a pinned release.

The rule tests check Lanner against Falco's own rule files, which are not part of this repository. They are looked
up in one documented order:

1. ``LANNER_FALCO_RULES`` (a folder holding falco_rules.yaml and k8s_audit_rules.yaml), when set;
2. ``../shared/falco-rules`` beside the checkout, the default;
3. ``.cache/falco-rules/`` in the checkout, where ``make upstream-rules`` puts the pinned release.

Standard library only, so ``python3 -m tests.support.upstream_rules fetch`` works before the venv exists.
Usage: ``python3 -m tests.support.upstream_rules locate|fetch|ensure`` (ensure: locate, else fetch).
"""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ENV = "LANNER_FALCO_RULES"
DEFAULT_DIR = REPO.parent / "shared" / "falco-rules"
CACHE_DIR = REPO / ".cache" / "falco-rules"


@dataclass(frozen=True)
class Pinned:
    name: str
    release: str
    url: str
    sha256: str


PINNED = (
    Pinned(
        "falco_rules.yaml",
        "falcosecurity/rules falco-rules-5.1.0",
        "https://raw.githubusercontent.com/falcosecurity/rules/falco-rules-5.1.0/rules/falco_rules.yaml",
        "1c15d5d543635b76e31cca39d7df8bf4caf50a428613c314d92986a23bfcb617",
    ),
    Pinned(
        "k8s_audit_rules.yaml",
        "falcosecurity/plugins plugins/k8saudit/v0.18.0",
        "https://raw.githubusercontent.com/falcosecurity/plugins/refs/tags/plugins/k8saudit/v0.18.0/"
        "plugins/k8saudit/rules/k8s_audit_rules.yaml",
        "fa53280e337db6edaeb44cf49fbd1be4349f3c48e3cd0017c2575097df901a1e",
    ),
)


class NotFound(Exception):
    """The upstream rules are in none of the places; the message names every way to provide them."""


def _complete(folder: Path) -> bool:
    return all((folder / p.name).is_file() for p in PINNED)


def locate() -> Path:
    """The folder holding the upstream rule files, or NotFound with one message naming both ways to get them."""
    env = os.environ.get(ENV)
    if env:
        folder = Path(env).resolve()
        if _complete(folder):
            return folder
        places = [f"{ENV}={env}: missing {', '.join(p.name for p in PINNED if not (folder / p.name).is_file())}"]
    else:
        if _complete(DEFAULT_DIR):
            return DEFAULT_DIR
        if _complete(CACHE_DIR):
            return CACHE_DIR
        places = [
            f"{ENV} is not set and its default {DEFAULT_DIR} does not hold them",
            f"{CACHE_DIR} (filled by `make upstream-rules`) does not hold them either",
        ]
    files = ", ".join(f"{p.name} ({p.release})" for p in PINNED)
    raise NotFound(
        f"The rule tests need the upstream Falco rules ({files}), and they were not found:\n"
        + "".join(f"  - {p}\n" for p in places)
        + "Provide them either way:\n"
        f"  - `make upstream-rules` fetches the pinned release from GitHub into {CACHE_DIR}\n"
        f"  - or put the two files in a folder and run with {ENV}=/that/folder (default ../shared/falco-rules)"
    )


def fetch(dest: Path | None = None) -> Path:
    """Download the pinned files into ``dest`` (default CACHE_DIR), checking each one's sha256; a clear error when
    offline."""
    dest = dest or CACHE_DIR
    dest.mkdir(parents=True, exist_ok=True)
    for p in PINNED:
        target = dest / p.name
        if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == p.sha256:
            continue
        try:
            with urllib.request.urlopen(p.url, timeout=30) as resp:
                body = resp.read()
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise NotFound(
                f"cannot download {p.name} ({p.release}) from {p.url}: {reason}\n"
                f"Without access to GitHub, copy falco_rules.yaml and k8s_audit_rules.yaml of those releases into "
                f"a folder and set {ENV}=/that/folder."
            ) from None
        digest = hashlib.sha256(body).hexdigest()
        if digest != p.sha256:
            raise NotFound(f"{p.url}: sha256 {digest}, expected {p.sha256} (pinned {p.release}); not saved")
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(body)
        tmp.replace(target)
    return dest


def ensure() -> Path:
    """``locate()``; when the rules are nowhere and LANNER_FALCO_RULES is not set, try ``fetch()`` once (so a fresh
    clone with access to GitHub just works), and when that fails too, say both."""
    try:
        return locate()
    except NotFound as missing:
        if os.environ.get(ENV):
            raise
        try:
            return fetch()
        except NotFound as offline:
            raise NotFound(f"{missing}\n(tried `make upstream-rules` just now: {offline})") from None


def main(argv: list[str]) -> int:
    commands = {"locate": locate, "fetch": fetch, "ensure": ensure}
    if len(argv) != 1 or argv[0] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        folder = commands[argv[0]]()
    except NotFound as exc:
        print(f"upstream rules: {exc}", file=sys.stderr)
        return 1
    print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
