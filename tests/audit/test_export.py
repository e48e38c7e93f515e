"""Exports round-trip with their signed manifest; one changed byte is caught."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile

import pytest
from django.core.management import CommandError, call_command
from django_tenants.utils import tenant_context

from accounts.policy import Perm, role_has
from audit.models import AuditEvent
from audit.services import record
from tests import support

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_it_round_trips_an_export_and_rejects_a_changed_byte(acme, tmp_path, fmt):
    with tenant_context(acme):
        record("user.updated", details={"fields": ["first_name"], "note": 'quotes " and , commas'})
    out = tmp_path / f"acme.{fmt}"
    call_command("audit_export", "--tenant", "acme", "--format", fmt, "--out", str(out))
    manifest_path = tmp_path / f"acme.{fmt}.manifest.json"
    manifest = json.loads(manifest_path.read_text())
    with tenant_context(acme):
        # Everything before the export is in it; the export's own event comes after.
        assert manifest["count"] == AuditEvent.objects.count() - 1
        last = AuditEvent.objects.filter(seq__isnull=False).order_by("-seq").first()
        assert manifest["last_seq"] == last.seq
        exported = AuditEvent.objects.filter(action="audit.exported").order_by("-id").first()
    assert exported.details["sha256"] == manifest["sha256"]
    stdout = io.StringIO()
    call_command("audit_verify_export", str(out), str(manifest_path), stdout=stdout)
    assert "Export OK" in stdout.getvalue()

    data = bytearray(out.read_bytes())
    data[len(data) // 2] ^= 0x01
    out.write_bytes(bytes(data))
    with pytest.raises(CommandError, match="REJECTED"):
        call_command("audit_verify_export", str(out), str(manifest_path))


def test_it_rejects_a_manifest_that_was_edited(acme, tmp_path):
    out = tmp_path / "acme.jsonl"
    call_command("audit_export", "--tenant", "acme", "--out", str(out))
    manifest_path = tmp_path / "acme.jsonl.manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["count"] += 1
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(CommandError, match="signature is invalid"):
        call_command("audit_verify_export", str(out), str(manifest_path))


def test_it_refuses_bad_export_arguments(tmp_path):
    with pytest.raises(CommandError, match="No tenant with slug 'nope'"):
        call_command("audit_export", "--tenant", "nope", "--out", str(tmp_path / "x"))
    with pytest.raises(CommandError, match="is not an ISO date"):
        call_command(
            "audit_export", "--tenant", "acme", "--since", "yesterday", "--out", str(tmp_path / "x")
        )
    with pytest.raises(CommandError, match="--since must be before --until"):
        call_command(
            "audit_export",
            "--tenant",
            "acme",
            "--since",
            "2026-02-01",
            "--until",
            "2026-01-01",
            "--out",
            str(tmp_path / "x"),
        )


def _client_for(tenant, role):
    client = support.signed_in(tenant, f"{role}@{tenant.slug}.test")
    return client


@pytest.mark.parametrize("role", support.ROLES)
def test_it_lets_only_audit_roles_view_and_export(acme, role):
    client = _client_for(acme, role)
    allowed = role_has(role, Perm.AUDIT_VIEW)
    expected = 200 if allowed else 403
    assert client.get("/audit/").status_code == expected
    assert client.get("/api/v1/audit/events/").status_code == expected
    response = client.post("/audit/export/", {"format": "jsonl"})
    assert response.status_code == expected
    api = client.post("/api/v1/audit/exports/", {"format": "csv"}, content_type="application/json")
    assert api.status_code == expected
    if allowed:
        archive = zipfile.ZipFile(io.BytesIO(api.content))
        names = archive.namelist()
        assert "platform-audit-public-key.pem" in names
        assert any(n.endswith(".csv.manifest.json") for n in names)


def test_it_exports_from_the_page_a_zip_that_verifies(acme, tmp_path):
    client = _client_for(acme, "analyst")
    response = client.post("/audit/export/", {"format": "jsonl"})
    assert response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    archive.extractall(tmp_path)
    data_name = next(n for n in archive.namelist() if n.endswith(".jsonl"))
    stdout = io.StringIO()
    call_command(
        "audit_verify_export",
        str(tmp_path / data_name),
        str(tmp_path / f"{data_name}.manifest.json"),
        "--public-key",
        str(tmp_path / "platform-audit-public-key.pem"),
        stdout=stdout,
    )
    assert "Export OK" in stdout.getvalue()
    with tenant_context(acme):
        event = AuditEvent.objects.filter(action="audit.exported").order_by("-id").first()
    assert event.actor_name == "analyst@acme.test"


def _page_export(client, tmp_path, data: dict) -> tuple[list[dict], dict, str]:
    response = client.post("/audit/export/", data)
    assert response["Content-Type"] == "application/zip", response.content[:300]
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    archive.extractall(tmp_path)
    name = next(n for n in archive.namelist() if n.endswith(f".{data['format']}"))
    manifest = json.loads((tmp_path / f"{name}.manifest.json").read_text())
    text = (tmp_path / name).read_text()
    rows = [json.loads(line) for line in text.splitlines() if line] if data["format"] == "jsonl" else []
    return rows, manifest, name


def test_the_page_export_honours_the_filters_on_screen(acme, tmp_path):
    with tenant_context(acme):
        record("auth.login.failed", outcome="failed", details={"username": "ghost"})
        record("user.updated", details={"fields": ["email"]})
    client = _client_for(acme, "analyst")
    # The export form on the page carries the viewer's filters (and htmx redraws them).
    page = client.get("/audit/", {"action": "auth.login.failed", "outcome": "failed"})
    html = page.content.decode()
    assert 'name="action" value="auth.login.failed"' in html
    assert 'name="outcome" value="failed"' in html
    partial = client.get("/audit/", {"outcome": "denied"}, HTTP_HX_REQUEST="true").content.decode()
    assert 'id="export-filters" hx-swap-oob="true"' in partial
    assert 'name="outcome" value="denied"' in partial

    rows, manifest, name = _page_export(
        client, tmp_path, {"format": "jsonl", "action": "auth.login.failed", "outcome": "failed"}
    )
    assert rows and {r["action"] for r in rows} == {"auth.login.failed"}
    assert manifest["filters"] == {"action": "auth.login.failed", "outcome": "failed"}
    assert manifest["contiguous"] is False and manifest["count"] == len(rows)
    # Still verifiable: each event's hash, the signature and the digest.
    stdout = io.StringIO()
    call_command(
        "audit_verify_export",
        str(tmp_path / name),
        str(tmp_path / f"{name}.manifest.json"),
        "--public-key",
        str(tmp_path / "platform-audit-public-key.pem"),
        stdout=stdout,
    )
    assert "Export OK" in stdout.getvalue()
    # No filters: the whole chain, linked.
    rows, manifest, _ = _page_export(client, tmp_path / "all", {"format": "jsonl"})
    assert manifest["contiguous"] is True and manifest["filters"] == {}
    assert len({r["action"] for r in rows}) > 1
    assert client.post("/audit/export/", {"format": "jsonl", "outcome": "bogus"}).status_code == 302
    # The API takes the same filters.
    api = client.post(
        "/api/v1/audit/exports/",
        {"format": "jsonl", "action": "auth.login.failed"},
        content_type="application/json",
    )
    assert api.status_code == 200, api.content[:300]
    with zipfile.ZipFile(io.BytesIO(api.content)) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".jsonl.manifest.json"))
        assert json.loads(archive.read(name))["filters"] == {"action": "auth.login.failed"}
    bad = client.post(
        "/api/v1/audit/exports/",
        {"format": "jsonl", "outcome": "bogus"},
        content_type="application/json",
    )
    assert bad.status_code == 400


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_the_bundle_verifies_without_parley(acme, tmp_path, fmt):
    """The README's instructions: only Python and ``cryptography``, never Parley or Django."""
    with tenant_context(acme):
        record("user.updated", details={"fields": ["first_name"], "note": 'quotes " and , Ünïcode'})
    client = _client_for(acme, "analyst")
    _, _, name = _page_export(client, tmp_path, {"format": fmt})
    readme = (tmp_path / "README.txt").read_text()
    script = (tmp_path / "verify_export.py").read_text()
    assert "pip install cryptography" in readme and f"python3 verify_export.py {name}" in readme
    # docs/audit.md quotes the very script the bundle carries.
    docs = (support.BASE_DIR / "docs" / "audit.md").read_text()
    assert script.strip() in docs
    assert "django" not in script.lower() and "import parley" not in script
    command = [
        sys.executable,
        "-I",  # isolated: no PYTHONPATH, no current directory, no user site
        "verify_export.py",
        name,
        f"{name}.manifest.json",
        "platform-audit-public-key.pem",
    ]
    ok = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, env={})
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("OK")
    # One changed byte in the file, or an edited manifest, is refused.
    data = bytearray((tmp_path / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (tmp_path / name).write_bytes(bytes(data))
    bad = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, env={})
    assert bad.returncode == 1 and "SHA-256 differs" in bad.stderr
    data[len(data) // 2] ^= 0x01
    (tmp_path / name).write_bytes(bytes(data))
    manifest_path = tmp_path / f"{name}.manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["count"] += 1
    manifest_path.write_text(json.dumps(manifest))
    bad = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, env={})
    assert bad.returncode == 1 and "not signed by this key" in bad.stderr
