"""KEK providers. Each wraps and unwraps 32-byte DEKs; none ever falls back to
plaintext: an unreachable or misconfigured provider raises KeyringUnavailable."""

from __future__ import annotations

import base64
import os
from functools import lru_cache

import hvac
import hvac.exceptions
import requests
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class KeyringError(Exception):
    """Base class; messages never carry key material or plaintext."""


class KeyringUnavailable(KeyringError):
    """The KEK provider cannot be reached or refused the operation."""


class UnwrapError(KeyringError):
    """A wrapped key does not unwrap (wrong KEK, altered, or another key's context)."""


class LocalProvider:
    """A 256-bit KEK from PARLEY_LOCAL_KEK(_FILE), hex. Development and small installs."""

    name = "local"

    def __init__(self, key_hex: str):
        try:
            key = bytes.fromhex(key_hex.strip())
        except ValueError:
            raise ImproperlyConfigured(
                "PARLEY_LOCAL_KEK must be 64 hex characters (256 bits)."
            ) from None
        if len(key) != 32:
            raise ImproperlyConfigured("PARLEY_LOCAL_KEK must be 64 hex characters (256 bits).")
        self._aead = AESGCM(key)

    def wrap(self, dek: bytes, *, context: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, dek, context.encode())
        return "local:v1:" + base64.b64encode(nonce + sealed).decode()

    def unwrap(self, wrapped: str, *, context: str) -> bytes:
        if not wrapped.startswith("local:v1:"):
            raise UnwrapError("not a key wrapped by the local provider")
        raw = base64.b64decode(wrapped.removeprefix("local:v1:"))
        try:
            return self._aead.decrypt(raw[:12], raw[12:], context.encode())
        except InvalidTag:
            raise UnwrapError(
                f"the wrapped key for {context} does not unwrap with this KEK"
            ) from None

    def rotate(self) -> None:
        raise KeyringError(
            "the local KEK is rotated by deploying a new key and re-wrapping (not supported yet)"
        )

    def rewrap(self, wrapped: str, *, context: str) -> str:
        return wrapped


class VaultProvider:
    """OpenBao / HashiCorp Vault Transit: wrap = encrypt, unwrap = decrypt.

    The KEK is the transit key ``PARLEY_VAULT_TRANSIT_KEY``; it never leaves the
    vault. ``context`` (tenant, purpose, version) travels inside the encrypted
    envelope and is checked on unwrap, so a wrapped DEK copied to another
    tenant's or purpose's row does not unwrap there.
    """

    name = "vault"

    def __init__(self, *, url: str, token: str, mount: str, key: str, ca_file: str | None = None):
        self.mount, self.key = mount, key
        self._client = hvac.Client(url=url, token=token, verify=ca_file or True, timeout=5)

    def _call(self, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (requests.exceptions.RequestException, hvac.exceptions.VaultDown) as exc:
            raise KeyringUnavailable(f"the vault is unreachable ({type(exc).__name__})") from None
        except hvac.exceptions.Forbidden:
            raise KeyringUnavailable("the vault refused the token (permission denied)") from None
        except hvac.exceptions.InvalidRequest as exc:
            raise UnwrapError(
                f"the vault refused the request: {exc.errors[0] if exc.errors else 'invalid'}"
            ) from None

    def wrap(self, dek: bytes, *, context: str) -> str:
        envelope = context.encode() + b"\x00" + dek
        result = self._call(
            self._client.secrets.transit.encrypt_data,
            name=self.key,
            plaintext=base64.b64encode(envelope).decode(),
            mount_point=self.mount,
        )
        return result["data"]["ciphertext"]

    def unwrap(self, wrapped: str, *, context: str) -> bytes:
        result = self._call(
            self._client.secrets.transit.decrypt_data,
            name=self.key,
            ciphertext=wrapped,
            mount_point=self.mount,
        )
        envelope = base64.b64decode(result["data"]["plaintext"])
        bound, _, dek = envelope.partition(b"\x00")
        if bound != context.encode() or len(dek) != 32:
            raise UnwrapError(f"the wrapped key does not belong to {context}")
        return dek

    def rotate(self) -> None:
        self._call(self._client.secrets.transit.rotate_key, name=self.key, mount_point=self.mount)

    def rewrap(self, wrapped: str, *, context: str) -> str:
        result = self._call(
            self._client.secrets.transit.rewrap_data,
            name=self.key,
            ciphertext=wrapped,
            mount_point=self.mount,
        )
        return result["data"]["ciphertext"]


@lru_cache(maxsize=1)
def _configured():
    kind = settings.PARLEY_KEK_PROVIDER
    if kind == "local":
        if not settings.PARLEY_LOCAL_KEK:
            raise ImproperlyConfigured(
                "PARLEY_LOCAL_KEK(_FILE) is not set (the local KEK provider needs it)."
            )
        return LocalProvider(settings.PARLEY_LOCAL_KEK)
    return VaultProvider(
        url=settings.PARLEY_VAULT_ADDR,
        token=settings.PARLEY_VAULT_TOKEN,
        mount=settings.PARLEY_VAULT_TRANSIT_MOUNT,
        key=settings.PARLEY_VAULT_TRANSIT_KEY,
        ca_file=settings.PARLEY_VAULT_CA_FILE or None,
    )


def provider():
    return _configured()


def reset() -> None:
    """Forget the configured provider (settings changed, e.g. in tests)."""
    _configured.cache_clear()
