# SPDX-License-Identifier: Apache-2.0
"""``lanner up --secure``: the one-host stack closed, with one flag.

Makes (once, kept across starts) a local CA and the pipeline certificate in ``STATE/pki`` and a token file with
one ``admin`` token in ``STATE/tokens.yaml`` (the token itself in ``STATE/admin.token``, mode 0600), and points
every service at them: mutual TLS on every hop, bearer tokens on Subscribe. Settings given in the environment or
the config file win over these.
"""

from __future__ import annotations

import os
from pathlib import Path

from lanner.pki import CA_CERT, CA_KEY, CERT, KEY, init_pki

SERVICES = ("collector", "enricher", "ruleengine", "dispatcher")


def secure_environment(state_dir: Path) -> dict[str, str]:
    """Create what is missing under ``state_dir`` and return the LANNER_* settings that use it."""
    from dispatcher.tokens_cli import add_token

    pki = state_dir / "pki"
    if not all((pki / n).exists() for n in (CA_CERT, CA_KEY, CERT, KEY)):
        init_pki(str(pki), force=True)
    tokens, admin = state_dir / "tokens.yaml", state_dir / "admin.token"
    if not tokens.exists():
        token = add_token(str(tokens), {"name": "admin"})
        fd = os.open(admin, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
    env = {f"LANNER_{s.upper()}__TLS_DIR": str(pki) for s in SERVICES}
    env["LANNER_DISPATCHER__TOKENS_FILE"] = str(tokens)
    return env


def subscribe_hint(state_dir: Path) -> str:
    """The ``lanner subscribe`` options that reach a --secure stack."""
    return f"--tls-dir {state_dir / 'pki'} --token-file {state_dir / 'admin.token'}"
