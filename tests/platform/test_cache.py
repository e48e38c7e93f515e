"""Cache keys carry the tenant's schema: one tenant never reads another's entry."""

from __future__ import annotations

import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from django_tenants.utils import tenant_context

pytestmark = pytest.mark.django_db


def test_it_prefixes_cache_keys_per_tenant(acme, globex):
    with tenant_context(acme):
        cache.set("greeting", "hello from acme", 30)
    with tenant_context(globex):
        assert cache.get("greeting") is None
        cache.set("greeting", "hello from globex", 30)
    with tenant_context(acme):
        assert cache.get("greeting") == "hello from acme"
    raw_keys = {k.decode() for k in redis.Redis.from_url(settings.REDIS_URL).keys("*greeting*")}
    assert any(acme.schema_name in k for k in raw_keys)
    assert any(globex.schema_name in k for k in raw_keys)
    for tenant in (acme, globex):
        with tenant_context(tenant):
            cache.delete("greeting")
