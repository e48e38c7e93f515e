"""Check a Parley audit export without Parley installed.

    pip install cryptography
    python3 verify_export.py EXPORT MANIFEST platform-audit-public-key.pem

Exit 0 when the manifest is signed by that key, the file is the one the
manifest describes, and every event's hashes are right (and, for a contiguous
export, each event links to the one before it). Exit 1 with the reason otherwise.
"""

import base64
import csv
import hashlib
import io
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import load_pem_public_key

# What each event's content hash covers (canonical JSON: sorted keys, no spaces, UTF-8).
CONTENT = (
    "actor_kind", "actor_id", "actor_name", "action", "target_type", "target_id",
    "outcome", "ip", "user_agent", "request_id", "details",
)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def problem(export_path: str, manifest_path: str, key_path: str) -> str | None:
    with open(manifest_path, encoding="utf-8") as f:
        manifest = json.load(f)
    with open(key_path, "rb") as f:
        key = load_pem_public_key(f.read())
    unsigned = {k: v for k, v in manifest.items() if k != "signature"}
    try:
        key.verify(base64.b64decode(manifest["signature"]), canonical(unsigned))
    except InvalidSignature:
        return "the manifest is not signed by this key (or was changed)"
    with open(export_path, "rb") as f:
        data = f.read()
    if sha256(data) != manifest["sha256"]:
        return "the file is not the one the manifest describes (SHA-256 differs)"
    text = data.decode("utf-8")
    if manifest["file_format"] == "jsonl":
        rows = [json.loads(line) for line in text.splitlines() if line]
    else:
        rows = list(csv.DictReader(io.StringIO(text)))
        for row in rows:
            row["details"] = json.loads(row["details"] or "{}")
            row["ip"] = row["ip"] or None
    if len(rows) != manifest["count"]:
        return f"{len(rows)} events in the file, {manifest['count']} in the manifest"
    linked = manifest.get("contiguous") is not False
    prev = None
    for row in rows:
        content = sha256(canonical({name: row[name] for name in CONTENT}))
        link = sha256(f"{row['seq']}|{row['occurred_at']}|{row['prev_hash']}|{content}".encode())
        if content != row["content_hash"] or link != row["hash"]:
            return f"event #{row['seq']} does not match its hash"
        if linked and prev is not None and row["prev_hash"] != prev["hash"]:
            return f"event #{row['seq']} does not link to event #{prev['seq']}"
        prev = row
    return None


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    reason = problem(*sys.argv[1:])
    if reason:
        sys.exit(f"NOT OK: {reason}")
    print("OK: signature, file digest and every event hash check out")
