"""Test certificates made with ``openssl``: a CA and a server certificate for 127.0.0.1."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from alarmflow.services._process import ServiceError, require_binary

DAYS = "2"
KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True)
class Certificates:
    """PEM files: the CA certificate clients trust, the server's certificate (signed by that CA,
    for 127.0.0.1 and localhost) and its unencrypted PKCS#8 key, and both in one file (the
    form of Kafka's PEM key store)."""

    ca: Path
    certificate: Path
    key: Path
    key_and_certificate: Path


def _openssl(*args: str, cwd: Path) -> None:
    command = [require_binary("openssl", "install Debian's openssl"), *args]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise ServiceError(f"{' '.join(command)} failed:\n{done.stderr}")


def make_certificates(directory: Path, name: str = "alarmflow-test") -> Certificates:
    """A new CA named ``name`` and a server certificate it signs, in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ca = ["req", "-x509", *KEY, "-keyout", "ca.key", "-out", "ca.pem", "-subj", f"/CN={name} CA"]
    request = ["req", *KEY, "-keyout", "server.key", "-out", "server.csr"]
    sign = ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key"]
    sign += ["-CAcreateserial", "-out", "server.pem", "-extfile", "san.cnf"]
    _openssl(*ca, "-days", DAYS, cwd=directory)
    _openssl(*request, "-subj", f"/CN={name} server", cwd=directory)
    _openssl(*sign, "-days", DAYS, cwd=directory)
    key, certificate = directory / "server.key", directory / "server.pem"
    both = directory / "server-key-and-cert.pem"
    both.write_text(key.read_text() + certificate.read_text())
    return Certificates(directory / "ca.pem", certificate, key, both)
