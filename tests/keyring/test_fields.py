"""Field encryption: bound to tenant, table, column and row; versioned keys; shredding."""

from __future__ import annotations

import pytest

from parley import phones
from parley.keyring import fields, keys
from parley.keyring.providers import LocalProvider, UnwrapError
from parley.models import WrappedKey

pytestmark = pytest.mark.django_db

WHERE = {"table": "connectors_credential", "column": "secret"}


def test_it_round_trips_and_hides_the_plaintext(acme):
    ciphertext = fields.encrypt("marker-7f3a", schema=acme.schema_name, pk=11, **WHERE)
    assert b"marker-7f3a" not in ciphertext
    assert fields.decrypt(ciphertext, schema=acme.schema_name, pk=11, **WHERE) == b"marker-7f3a"
    # A random nonce: the same value encrypts differently each time.
    assert fields.encrypt("marker-7f3a", schema=acme.schema_name, pk=11, **WHERE) != ciphertext


@pytest.mark.parametrize(
    "elsewhere",
    [
        {"pk": 12},  # another row
        {"column": "token"},  # another column
        {"table": "conversations_message"},  # another table
    ],
)
def test_it_refuses_a_ciphertext_moved_elsewhere_in_the_tenant(acme, elsewhere):
    ciphertext = fields.encrypt("s3cret", schema=acme.schema_name, pk=11, **WHERE)
    target = {**WHERE, "pk": 11, **elsewhere}
    with pytest.raises(
        fields.DecryptionError, match="does not belong to this tenant, table, column and row"
    ):
        fields.decrypt(ciphertext, schema=acme.schema_name, **target)


def test_it_refuses_a_ciphertext_moved_to_another_tenant(acme, globex):
    ciphertext = fields.encrypt("s3cret", schema=acme.schema_name, pk=11, **WHERE)
    with pytest.raises(fields.DecryptionError) as excinfo:
        fields.decrypt(ciphertext, schema=globex.schema_name, pk=11, **WHERE)
    assert "t_globex.connectors_credential.secret#11" in str(excinfo.value)
    assert "s3cret" not in str(excinfo.value)


def test_it_refuses_an_altered_ciphertext(acme):
    ciphertext = bytearray(fields.encrypt("s3cret", schema=acme.schema_name, pk=11, **WHERE))
    ciphertext[-1] ^= 1
    with pytest.raises(fields.DecryptionError):
        fields.decrypt(bytes(ciphertext), schema=acme.schema_name, pk=11, **WHERE)


def test_it_keeps_old_versions_readable_after_rotation(acme):
    before = fields.encrypt("old", schema=acme.schema_name, pk=1, **WHERE)
    rotated = keys.rotate(acme.schema_name, "data")
    after = fields.encrypt("new", schema=acme.schema_name, pk=1, **WHERE)
    assert fields.key_version_of(after) == rotated.version == fields.key_version_of(before) + 1
    assert fields.decrypt(before, schema=acme.schema_name, pk=1, **WHERE) == b"old"
    assert fields.decrypt(after, schema=acme.schema_name, pk=1, **WHERE) == b"new"
    states = dict(
        WrappedKey.objects.filter(schema_name=acme.schema_name, purpose="data").values_list(
            "version", "state"
        )
    )
    assert list(states.values()).count("active") == 1


def test_it_makes_everything_unreadable_once_the_keys_are_destroyed(acme):
    ciphertext = fields.encrypt("gone", schema=acme.schema_name, pk=3, **WHERE)
    assert keys.destroy(acme.schema_name) == len(WrappedKey.Purpose.values)  # one per purpose
    with pytest.raises(keys.KeyNotFound, match="destroyed"):
        fields.decrypt(ciphertext, schema=acme.schema_name, pk=3, **WHERE)
    assert set(
        WrappedKey.objects.filter(schema_name=acme.schema_name).values_list("wrapped", flat=True)
    ) == {""}


def test_it_stores_keys_only_wrapped(acme):
    version, dek = keys.active_key(acme.schema_name, "data")
    row = WrappedKey.objects.get(schema_name=acme.schema_name, purpose="data", version=version)
    assert row.wrapped.startswith("local:v1:") and dek.hex() not in row.wrapped
    other_kek = LocalProvider("11" * 32)
    with pytest.raises(UnwrapError, match="does not unwrap with this KEK"):
        other_kek.unwrap(row.wrapped, context=keys.context_for(acme.schema_name, "data", version))


def test_it_computes_blind_indexes_per_tenant(acme, globex):
    phone, _ = phones.normalise("+1 (555) 010-2030", region="US")
    assert phone == "+15550102030"
    first = fields.blind_index(phone, schema=acme.schema_name, field="contact.phone")
    assert first == fields.blind_index(
        "+15550102030", schema=acme.schema_name, field="contact.phone"
    )
    assert first != fields.blind_index(phone, schema=globex.schema_name, field="contact.phone")
    assert first != fields.blind_index(phone, schema=acme.schema_name, field="contact.email")
