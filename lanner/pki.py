# SPDX-License-Identifier: Apache-2.0
"""Mutual TLS between Lanner's own services: a local CA, one certificate for the pipeline, and gRPC credentials.

Only the pipeline may push into the pipeline: a collector's events or a rule engine's alerts are only as
trustworthy as the peer that sent them. ``lanner certs init DIR`` makes a private CA and a certificate signed by it
that every service presents, both as a server and as a client. A service with ``tls_dir`` set serves only mutual
TLS: a peer whose certificate that CA did not sign cannot complete the handshake, on any of its methods
(``lanner subscribe`` and ``lanner healthcheck`` take ``--tls-dir`` too). The CA key stays in ``DIR`` (mode 0600)
and is needed only to issue certificates.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

log = logging.getLogger(__name__)

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
CERT = "pipeline.crt"
KEY = "pipeline.key"
# Names a pipeline certificate answers to: loopback, and the service names of docker-compose and Kubernetes.
DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1", "collector", "enricher", "ruleengine", "dispatcher")
# The name clients verify, whatever address they dial (compose and Kubernetes dial service names or pod IPs).
SERVER_NAME = "lanner-pipeline"
# The common name of the pipeline certificate: the only identity the intakes (PushEvents, PushAlerts) admit. Client
# certificates from the same CA (``lanner certs client``) carry other names.
PIPELINE_NAME = "lanner-pipeline"
VALID_DAYS = 825


class PkiError(Exception):
    """The TLS material is missing or unusable; the message names the file."""


@dataclass(frozen=True, slots=True)
class PipelineTls:
    """The PEM material a service needs: the CA that signs pipeline peers, and its own certificate and key."""

    ca: bytes
    cert: bytes
    key: bytes

    @classmethod
    def load(cls, directory: str) -> PipelineTls:
        """Read ``ca.crt``, ``pipeline.crt`` and ``pipeline.key`` from ``directory``."""
        parts = []
        for name in (CA_CERT, CERT, KEY):
            path = Path(directory) / name
            try:
                parts.append(path.read_bytes())
            except OSError as exc:
                raise PkiError(
                    f"{path}: {exc.strerror or exc} (create it with `lanner certs init {directory}`)"
                ) from None
        return cls(*parts)

    def server_credentials(self) -> grpc.ServerCredentials:
        """Mutual TLS for a server: the handshake itself refuses a peer without a certificate from the CA, so no
        request of a stranger ever reaches a handler."""
        return grpc.ssl_server_credentials([(self.key, self.cert)], root_certificates=self.ca, require_client_auth=True)

    def public_server_credentials(self) -> grpc.ServerCredentials:
        """Server-only TLS for a public listener: clients verify the pipeline certificate against ``ca.crt``, and
        authenticate with a bearer token rather than a certificate."""
        return grpc.ssl_server_credentials([(self.key, self.cert)])

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """TLS for a client: trust only the pipeline CA, and present the pipeline certificate."""
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca, private_key=self.key, certificate_chain=self.cert
        )


def peer_name(auth_context: Mapping[str, Iterable[bytes]]) -> str:
    """The common name of a gRPC peer's verified certificate ('' over plain TCP or without one)."""
    name = next(iter(auth_context.get("x509_common_name") or ()), b"")
    return name.decode("utf-8", "replace")


def is_pipeline_peer(auth_context: Mapping[str, Iterable[bytes]]) -> bool:
    """Whether the peer presented the pipeline's own certificate (not a client certificate of the same CA)."""
    return peer_name(auth_context) == PIPELINE_NAME


def foreign_certificate(auth_context: Mapping[str, Iterable[bytes]]) -> str | None:
    """For an intake: the name of a TLS peer whose certificate is not the pipeline's (to refuse), else None.
    Over plain TCP (no ``tls_dir``) there is no identity to check and the answer is None."""
    if b"ssl" not in (auth_context.get("transport_security_type") or ()):
        return None
    return None if is_pipeline_peer(auth_context) else peer_name(auth_context) or "no certificate"


def pipeline_only(behavior: Any, stage: str) -> Any:
    """A stream-stream intake handler (PushEvents) that, under mutual TLS, refuses any certificate but the
    pipeline's own (PERMISSION_DENIED): the CA also signs client certificates (``lanner certs client``) for readers
    such as the audit webhook's API server, and those may never push. One check per stream."""

    async def guarded(requests: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        who = foreign_certificate(context.auth_context())
        if who is not None:
            message = f"PushEvents: certificate {who!r} may not push"
            log.warning("intake refused a peer", extra={"stage": stage, "peer": context.peer(), "error": message})
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, message)
        async for ack in behavior(requests, context):
            yield ack

    return guarded


def load_optional(directory: str) -> PipelineTls | None:
    """The material in ``directory``, or None when no directory is configured (plain TCP)."""
    return PipelineTls.load(directory) if directory else None


def secure_channel_options() -> tuple[tuple[str, str], ...]:
    """Verify the server as the pipeline's name, whichever address was dialled."""
    return (("grpc.ssl_target_name_override", SERVER_NAME),)


def init_pki(directory: str, hosts: Sequence[str] = DEFAULT_HOSTS, *, force: bool = False) -> list[Path]:
    """Create a CA and a pipeline certificate in ``directory``; returns the files written."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    out = Path(directory)
    files = [out / n for n in (CA_CERT, CA_KEY, CERT, KEY)]
    existing = [f for f in files if f.exists()]
    if existing and not force:
        raise PkiError(f"{existing[0]}: already exists (use --force to replace the CA and certificate)")
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)
    now = datetime.datetime.now(datetime.UTC)
    not_after = now + datetime.timedelta(days=VALID_DAYS)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Lanner pipeline CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(SERVER_NAME)]
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            if host != SERVER_NAME:
                names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, PIPELINE_NAME)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    def private(k: ec.EllipticCurvePrivateKey) -> bytes:
        return k.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    contents = {
        CA_CERT: ca_cert.public_bytes(serialization.Encoding.PEM),
        CA_KEY: private(ca_key),
        CERT: cert.public_bytes(serialization.Encoding.PEM),
        KEY: private(key),
    }
    for name, data in contents.items():
        path = out / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if name.endswith(".key") else 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    return files


def sync_channel(target: str, tls_dir: str = "") -> grpc.Channel:
    """A blocking channel for command-line clients (``lanner subscribe``, ``lanner healthcheck``): plain TCP when
    ``tls_dir`` is empty; mutual TLS when it holds the pipeline certificate; and when it holds only ``ca.crt``,
    TLS that verifies the server (a public listener with ``public_tls``, where a bearer token authenticates)."""
    if not tls_dir:
        return grpc.insecure_channel(target)
    if not (Path(tls_dir) / KEY).exists() and (Path(tls_dir) / CA_CERT).exists():
        creds = grpc.ssl_channel_credentials(root_certificates=(Path(tls_dir) / CA_CERT).read_bytes())
    else:
        creds = PipelineTls.load(tls_dir).channel_credentials()
    return grpc.secure_channel(target, creds, options=secure_channel_options())
