# SPDX-License-Identifier: Apache-2.0
"""``lanner certs init DIR``: the local CA and pipeline certificate that turn on mutual TLS between services."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from lanner.pki import DEFAULT_HOSTS, PkiError, init_pki


def _init(args: argparse.Namespace) -> int:
    hosts = tuple(dict.fromkeys([*DEFAULT_HOSTS, *args.host]))
    try:
        files = init_pki(args.dir, hosts, force=args.force)
    except PkiError as exc:
        print(f"lanner certs init: {exc}", file=sys.stderr)
        return 1
    for path in files:
        print(path)
    print(
        f"set tls_dir: {args.dir} in every service's section (or LANNER_<SERVICE>__TLS_DIR) to require mutual TLS",
        file=sys.stderr,
    )
    return 0


def add_commands(sub: Any) -> None:
    """Register ``certs`` on the ``lanner`` command."""
    certs = sub.add_parser("certs", help="manage the pipeline's mutual-TLS certificates")
    actions = certs.add_subparsers(dest="certs_command", metavar="ACTION", required=True)
    init = actions.add_parser("init", help="create a local CA and the pipeline certificate in DIR")
    init.add_argument("dir", metavar="DIR", help="directory for ca.crt, ca.key, pipeline.crt, pipeline.key")
    init.add_argument(
        "--host", action="append", default=[], metavar="NAME", help="another DNS name or IP the services use"
    )
    init.add_argument("--force", action="store_true", help="replace an existing CA and certificate")
    init.set_defaults(func=_init)
