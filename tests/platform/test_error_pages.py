"""Parley's own 403/404/500 pages: styled, saying what to do, and no inline
style or script for the CSP to refuse, with DEBUG on or off."""

from __future__ import annotations

import re

import pytest
from django.test import override_settings

from tests import support

pytestmark = pytest.mark.django_db

INLINE = re.compile(rb"<style|\sstyle=|<script(?![^>]*\ssrc=)", re.IGNORECASE)


@pytest.mark.parametrize("debug", [False, True])
def test_it_shows_its_own_404_page_for_an_unknown_path(debug):
    with override_settings(DEBUG=debug):
        for client in (support.tenant_client("acme"), support.console_client()):
            response = client.get("/no-such-page/")
            assert response.status_code == 404
            assert b"Not found" in response.content
            assert b"/static/css/parley.css" in response.content
            assert not INLINE.search(response.content)
            assert "style-src 'self';" in response["Content-Security-Policy"]


def test_it_answers_json_404_under_the_api_with_debug_on():
    with override_settings(DEBUG=True):
        response = support.tenant_client("acme").get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_its_403_page_says_what_to_do(acme):
    client = support.signed_in(acme, "marketer@acme.test")
    response = client.get("/users/")
    assert response.status_code == 403
    assert b"ask an administrator" in response.content
    assert not INLINE.search(response.content)


def test_its_500_page_is_plain_and_styled():
    from parley.views import server_error

    response = server_error(_request())
    assert response.status_code == 500
    assert b"parley.css" in response.content
    assert not INLINE.search(response.content)


def _request():
    from django.test import RequestFactory

    return RequestFactory().get("/")
