"""The fake Slack over HTTPS, as slack.com speaks it: a throwaway certificate, and a
trust store that holds it beside the system's CA certificates, for a process that
trusts it as the bot trusts slack.com (SSL_CERT_FILE)."""

import datetime
import ipaddress
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.fakes.slack_api import FakeSlack


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (P-256, as slack.com's), as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-slack")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "fake-slack.pem", directory / "fake-slack.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def trust_store(directory: Path, cert: Path) -> Path:
    """A CA file of the system's certificates and `cert`: the SSL_CERT_FILE of a process
    that should trust the fake as it trusts slack.com, loading as much to do so."""
    system = Path(ssl.get_default_verify_paths().cafile or "/nonexistent")
    bundle = directory / "trusted.pem"
    bundle.write_bytes((system.read_bytes() if system.is_file() else b"") + cert.read_bytes())
    return bundle


class TlsFakeSlack(FakeSlack):
    """FakeSlack over HTTPS. Each handshake happens in the server's accepting thread."""

    def __init__(self, cert: Path, key: Path, **kwargs):
        super().__init__(**kwargs)
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)

    def _make_server(self):
        server = super()._make_server()
        server.socket = self.context.wrap_socket(server.socket, server_side=True)
        return server

    @property
    def url(self) -> str:
        return super().url.replace("http://", "https://", 1)
