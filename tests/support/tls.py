"""Throwaway TLS material for tests: a CA, a server certificate for loopback, a client certificate.

``make_tls_files(directory)`` runs the ``openssl`` command line (no Python
dependency) and writes, into ``directory``:

* ``ca.pem`` / ``ca-key.pem``: a self-signed CA, valid for two days;
* ``server.pem`` / ``server-key.pem``: a server certificate signed by the CA for
  ``subjectAltName = IP:127.0.0.1, DNS:localhost`` (``extendedKeyUsage = serverAuth``);
* ``client.pem`` / ``client-key.pem``: a client certificate signed by the CA
  (``extendedKeyUsage = clientAuth``), for mutual TLS;
* ``other-ca.pem``: an unrelated CA that signed nothing, for "wrong CA" tests.

Keys are ECDSA P-256, so generating everything takes a few tens of milliseconds.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.receiver import ServerTls

__all__ = ["OPENSSL", "OpensslMissing", "TlsFiles", "make_tls_files"]

OPENSSL = shutil.which("openssl")
"""The openssl executable, or None when it is not installed."""

_VALID_DAYS = "2"
_CONFIG = """\
[req]
distinguished_name = dn
prompt = no

[dn]
CN = unused

[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[client_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""


class OpensslMissing(RuntimeError):
    """The ``openssl`` command line is not installed."""


@dataclass(frozen=True)
class TlsFiles:
    """Paths of the generated PEM files."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path

    def server_tls(self, *, mutual: bool = False) -> ServerTls:
        """The receiver's TLS settings; with ``mutual``, clients must present a certificate from our CA."""
        return ServerTls(self.server_cert, self.server_key, client_ca=self.ca if mutual else None)


def make_tls_files(directory: Path) -> TlsFiles:
    """Generate a CA, a loopback server certificate and a client certificate in ``directory``.

    Raises:
        OpensslMissing: If ``openssl`` is not on PATH.
        RuntimeError: If openssl fails; the message holds its stderr.
    """
    if OPENSSL is None:
        raise OpensslMissing("the openssl command line is needed to generate test certificates")
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "openssl.cnf"
    config.write_text(_CONFIG)
    ca, ca_key = _self_signed_ca(directory, "ca", "dbt-otel-replay test CA", config)
    other_ca, _ = _self_signed_ca(directory, "other-ca", "unrelated test CA", config)
    server, server_key = _signed(directory, "server", "localhost", "server_ext", ca, ca_key, config, serial=2)
    client, client_key = _signed(
        directory, "client", "test-client", "client_ext", ca, ca_key, config, serial=3
    )
    return TlsFiles(ca, server, server_key, client, client_key, other_ca)


def _self_signed_ca(directory: Path, name: str, common_name: str, config: Path) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}-key.pem"
    _openssl(
        "req", "-x509", "-config", config, "-extensions", "ca_ext", *_new_key(key),
        "-subj", f"/CN={common_name}", "-days", _VALID_DAYS, "-out", cert,
    )  # fmt: skip
    return cert, key


def _signed(
    directory: Path,
    name: str,
    common_name: str,
    extensions: str,
    ca: Path,
    ca_key: Path,
    config: Path,
    *,
    serial: int,
) -> tuple[Path, Path]:
    cert, key, request = (directory / f"{name}{suffix}" for suffix in (".pem", "-key.pem", ".csr"))
    _openssl("req", "-new", "-config", config, *_new_key(key), "-subj", f"/CN={common_name}", "-out", request)
    _openssl(
        "x509", "-req", "-in", request, "-CA", ca, "-CAkey", ca_key, "-set_serial", str(serial),
        "-days", _VALID_DAYS, "-extfile", config, "-extensions", extensions, "-out", cert,
    )  # fmt: skip
    return cert, key


def _new_key(key: Path) -> tuple[str | Path, ...]:
    return ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key)


def _openssl(*args: str | Path) -> None:
    assert OPENSSL is not None
    completed = subprocess.run([OPENSSL, *map(str, args)], capture_output=True, text=True, timeout=30)
    if completed.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed ({completed.returncode}): {completed.stderr.strip()}")
