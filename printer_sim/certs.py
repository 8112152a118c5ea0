"""Self-signed TLS certificates for fake printers, made with ``cryptography``.

Real printers make their own certificates (a Bambu Lab printer's has
CN = its serial). `make_certificate` makes such a certificate and
`server_context` turns it into a server-side `ssl.SSLContext` without loading
any CA store (which would block an event loop).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
import hashlib
from pathlib import Path
import ssl
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["Certificate", "make_certificate", "server_context"]


@dataclass(frozen=True, slots=True)
class Certificate:
    """A certificate and its private key."""

    der: bytes = field(repr=False)
    """The certificate, DER encoded (what a TLS client sees)."""
    cert_pem: bytes = field(repr=False)
    key_pem: bytes = field(repr=False)
    common_name: str

    @property
    def sha256(self) -> str:
        """Return the lowercase hex SHA-256 of the DER certificate."""
        return hashlib.sha256(self.der).hexdigest()


def make_certificate(common_name: str, *, valid_days: int = 3650) -> Certificate:
    """Return a fresh self-signed EC P-256 certificate with a new key.

    Valid from yesterday for ``valid_days`` days; subject and issuer are
    ``CN=common_name``.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=valid_days))
        .sign(key, hashes.SHA256())
    )
    return Certificate(
        der=cert.public_bytes(serialization.Encoding.DER),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        common_name=common_name,
    )


def server_context(certificate: Certificate) -> ssl.SSLContext:
    """Return a server `ssl.SSLContext` presenting ``certificate`` (TLS 1.2+)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # load_cert_chain only reads files.
    with tempfile.TemporaryDirectory() as directory:
        cert_path = Path(directory, "cert.pem")
        key_path = Path(directory, "key.pem")
        cert_path.write_bytes(certificate.cert_pem)
        key_path.write_bytes(certificate.key_pem)
        context.load_cert_chain(cert_path, key_path)
    return context
