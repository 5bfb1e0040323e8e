"""Self-signed certificates for the tests' TLS servers, made with the openssl program."""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from pathlib import Path

import pytest


def self_signed(folder: Path, name: str = "127.0.0.1") -> tuple[Path, Path]:
    """(certificate, key) for ``name``, a host name or an IP address, valid for two days."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl program is needed to make a test certificate")
    try:
        alt = f"IP:{ipaddress.ip_address(name)}"
    except ValueError:
        alt = f"DNS:{name}"
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}", "-addext",
         f"subjectAltName={alt}"],
        check=True, capture_output=True,
    )
    return cert, key
