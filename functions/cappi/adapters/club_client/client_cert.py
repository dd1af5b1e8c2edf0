"""The client certificate of an mtls source, as the files requests needs for `cert=(certfile, keyfile)`.

requests and ssl only load a certificate and key from files, so the PEM values from the secret are written to a
private directory (0700, created once per client on first use) as files only the owner can read (0600). They are
rewritten under new names when the secret's value changes, so a rotated certificate gets fresh connections
instead of pooled ones made with the old one. The directory is removed when the client goes away.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import ssl
import tempfile
import threading
import weakref
from pathlib import Path

from cappi.adapters.club_client.credentials import SecretReader
from cappi.adapters.club_client.fetch_run import FetchRun
from cappi.domain.registry import ClubAuth


class ClientCertificates:
    def __init__(self, credentials: SecretReader) -> None:
        self._credentials = credentials
        self._lock = threading.Lock()
        self._directory: Path | None = None
        # secret name -> (fingerprint of the value, generation, (certfile, keyfile))
        self._written: dict[str, tuple[bytes, int, tuple[str, str]]] = {}

    def files(self, auth: ClubAuth, run: FetchRun) -> tuple[str, str] | None:
        """(certfile, keyfile) for an mtls source, None for any other auth type."""
        if auth.type != "mtls":
            return None
        certificate, key = self._credentials.certificate_and_key(auth, run)
        name = auth.secret or ""
        fingerprint = hashlib.sha256(f"{certificate}\0{key}".encode()).digest()
        with self._lock:
            known = self._written.get(name)
            if known is not None and known[0] == fingerprint:
                return known[2]
            generation = known[1] + 1 if known is not None else 1
            paths = self._write(name, generation, certificate, key, run)
            self._written[name] = (fingerprint, generation, paths)
        if known is not None:
            for old in known[2]:
                Path(old).unlink(missing_ok=True)
        return paths

    def _write(self, name: str, generation: int, certificate: str, key: str, run: FetchRun) -> tuple[str, str]:
        directory = self._private_directory()
        # Named after a digest of the secret name, so the file system holds no secret name either.
        stem = f"{hashlib.sha256(name.encode()).hexdigest()[:16]}-{generation}"
        cert_path = directory / f"{stem}-cert.pem"
        key_path = directory / f"{stem}-key.pem"
        _write_private(key_path, key)
        _write_private(cert_path, certificate)
        try:
            # Load them once here, so a certificate that does not match its key fails with a clear message
            # instead of as a TLS failure on every attempt.
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(cert_path, key_path)
        except (ssl.SSLError, ValueError) as exc:
            key_path.unlink(missing_ok=True)
            cert_path.unlink(missing_ok=True)
            # The reason ('KEY_VALUES_MISMATCH', 'PEM lib'), never the library's message, which might quote input.
            reason = getattr(exc, "reason", None) or type(exc).__name__
            raise run.error(
                "secret_missing",
                f"secret {name!r}: the certificate and key cannot be used together for TLS ({reason})",
            ) from None
        return str(cert_path), str(key_path)

    def _private_directory(self) -> Path:
        if self._directory is None or not self._directory.is_dir():
            path = tempfile.mkdtemp(prefix="cappi-mtls-")  # mode 0700
            weakref.finalize(self, shutil.rmtree, path, ignore_errors=True)
            self._directory = Path(path)
        return self._directory


def _write_private(path: Path, text: str) -> None:
    """Write `text` to a new file only the owner may read, replacing any file of that name."""
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        os.fchmod(file.fileno(), 0o600)  # whatever the umask
        file.write(text.encode())
    os.replace(partial, path)
