# SPDX-License-Identifier: Apache-2.0
"""``lanner certs init DIR``: the local CA and pipeline certificate that turn on mutual TLS between services;
``lanner certs client DIR NAME``: a client certificate of that CA for a caller that is not the pipeline."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from lanner.pki import CA_CERT, CA_KEY, CERT, DEFAULT_HOSTS, KEY, PkiError, init_pki
from lanner.pki_client import issue_client


def _init(args: argparse.Namespace) -> int:
    hosts = tuple(dict.fromkeys([*DEFAULT_HOSTS, *args.host]))
    if args.if_missing and all((Path(args.dir) / n).exists() for n in (CA_CERT, CA_KEY, CERT, KEY)):
        print(f"lanner certs init: {args.dir} already holds a CA and a pipeline certificate; kept", file=sys.stderr)
        return 0
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


def _client(args: argparse.Namespace) -> int:
    try:
        files = issue_client(args.dir, args.name, args.out)
    except PkiError as exc:
        print(f"lanner certs client: {exc}", file=sys.stderr)
        return 1
    for path in files:
        print(path)
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
    init.add_argument(
        "--if-missing", action="store_true", help="do nothing (exit 0) when DIR already holds all four files"
    )
    init.set_defaults(func=_init)
    client = actions.add_parser(
        "client", help="sign a client-only certificate NAME.crt/NAME.key with the CA in DIR (cannot push events)"
    )
    client.add_argument("dir", metavar="DIR", help="directory made by `lanner certs init` (ca.crt, ca.key)")
    client.add_argument("name", metavar="NAME", help="the certificate's common name, e.g. kube-apiserver")
    client.add_argument("--out", default="", metavar="DIR", help="where to write NAME.crt and NAME.key (default DIR)")
    client.set_defaults(func=_client)
