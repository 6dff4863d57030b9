# SPDX-License-Identifier: Apache-2.0
"""Client certificates from the pipeline CA, for callers that are not the pipeline.

``lanner certs client DIR NAME`` signs a certificate with common name NAME that is good for client authentication
only: the Kubernetes API server presenting it to the audit webhook, or an operator's ``lanner subscribe`` over
mutual TLS. It completes a handshake with any service of the pipeline, but the intakes (PushEvents, PushAlerts)
check the peer's identity and admit only the pipeline's own certificate (``lanner.pki.PIPELINE_NAME``), so such a
certificate can read what it is allowed to read and never push.
"""

from __future__ import annotations

import datetime
import os
import re
from pathlib import Path

from lanner.pki import CA_CERT, CA_KEY, PIPELINE_NAME, VALID_DAYS, PkiError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def issue_client(pki_dir: str, name: str, out_dir: str = "") -> tuple[Path, Path]:
    """Sign ``NAME.crt`` (and write ``NAME.key``) into ``out_dir`` (default ``pki_dir``) with the CA of
    ``pki_dir``; returns the two paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if not _NAME.match(name):
        raise PkiError(f"{name!r}: a client name is 1-64 letters, digits, '.', '_' or '-'")
    if name == PIPELINE_NAME:
        raise PkiError(f"{name!r}: that is the pipeline's own identity; pick another name")
    src = Path(pki_dir)
    try:
        ca_cert = x509.load_pem_x509_certificate((src / CA_CERT).read_bytes())
        ca_key = serialization.load_pem_private_key((src / CA_KEY).read_bytes(), password=None)
    except OSError as exc:
        raise PkiError(f"{exc.filename}: {exc.strerror} (the CA made by `lanner certs init {pki_dir}`)") from None
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{src / CA_KEY}: not the EC key `lanner certs init` writes")
    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    out = Path(out_dir or pki_dir)
    out.mkdir(parents=True, exist_ok=True)
    crt_path, key_path = out / f"{name}.crt", out / f"{name}.key"
    crt_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return crt_path, key_path
