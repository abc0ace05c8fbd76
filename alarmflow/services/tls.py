"""Test certificates made with ``openssl``: a CA, a server certificate for 127.0.0.1 and a
client certificate, both signed by that CA."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from alarmflow.services._process import ServiceError, require_binary

DAYS = "2"
KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True)
class Certificates:
    """PEM files: the CA certificate clients trust; the server's certificate (for 127.0.0.1 and
    localhost) and its unencrypted PKCS#8 key, also both in one file (the form of Kafka's PEM
    key store); and a client certificate with its key, for servers that require one."""

    ca: Path
    certificate: Path
    key: Path
    key_and_certificate: Path
    client_certificate: Path
    client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    command = [require_binary("openssl", "install Debian's openssl"), *args]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise ServiceError(f"{' '.join(command)} failed:\n{done.stderr}")


def _signed(directory: Path, name: str, subject: str, extensions: str) -> tuple[Path, Path]:
    """A key and a certificate for ``subject`` signed by the CA in ``directory``."""
    (directory / f"{name}.cnf").write_text(extensions)
    request = ["req", *KEY, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject]
    sign = ["x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key"]
    sign += ["-CAcreateserial", "-out", f"{name}.pem", "-extfile", f"{name}.cnf"]
    _openssl(*request, cwd=directory)
    _openssl(*sign, "-days", DAYS, cwd=directory)
    return directory / f"{name}.key", directory / f"{name}.pem"


def make_certificates(directory: Path, name: str = "alarmflow-test") -> Certificates:
    """A new CA named ``name`` and the certificates it signs, in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = ["req", "-x509", *KEY, "-keyout", "ca.key", "-out", "ca.pem", "-subj", f"/CN={name} CA"]
    _openssl(*ca, "-days", DAYS, cwd=directory)
    server = "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
    key, certificate = _signed(directory, "server", f"/CN={name} server", server)
    client_key, client = _signed(
        directory, "client", f"/CN={name} client", "extendedKeyUsage=clientAuth\n"
    )
    both = directory / "server-key-and-cert.pem"
    both.write_text(key.read_text() + certificate.read_text())
    return Certificates(directory / "ca.pem", certificate, key, both, client, client_key)


def encrypted_key(key: Path, password: str, out: Path) -> Path:
    """``key`` encrypted with ``password`` (PKCS#8, AES-256) into ``out``: a key kept
    encrypted at rest, opened with ``ssl.key.password``."""
    command = ["pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", str(key), "-out", str(out)]
    _openssl(*command, "-passout", f"pass:{password}", cwd=out.parent)
    return out
