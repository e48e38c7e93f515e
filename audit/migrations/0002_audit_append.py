"""audit_append(): append one event to this schema's chain in a single statement.

It takes the chain's advisory lock (class 0x41554454 "AUDT", key: hash of the
schema), reads the head with a fresh snapshot, stamps the time, computes
hash = SHA-256("<seq>|<occurred_at>|<prev_hash>|<content_hash>") and inserts.
The lock is transaction-scoped: it is held until the caller's transaction ends,
so the next writer always sees this event as the head. Doing all of this in one
round trip keeps the serialised part of an append short.
"""

from django.db import migrations

CREATE = r"""
CREATE OR REPLACE FUNCTION audit_append(
    p_content_hash text, p_actor_kind text, p_actor_id text, p_actor_name text, p_action text,
    p_target_type text, p_target_id text, p_outcome text, p_ip inet, p_user_agent text,
    p_request_id text, p_details jsonb
) RETURNS TABLE (event_id bigint, event_seq bigint, event_occurred_at timestamptz,
                 event_prev_hash text, event_hash text)
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    head_seq bigint;
    head_hash text;
    stamp timestamptz;
    link text;
    new_id bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(1096107092, hashtext(current_schema()));
    SELECT a.seq, a.hash INTO head_seq, head_hash FROM audit_auditevent a ORDER BY a.seq DESC LIMIT 1;
    head_seq := coalesce(head_seq, 0) + 1;
    head_hash := coalesce(head_hash, repeat('0', 64));
    stamp := clock_timestamp();
    link := encode(sha256(convert_to(
        head_seq::text || '|' || to_char(stamp AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
        || '|' || head_hash || '|' || p_content_hash, 'UTF8')), 'hex');
    INSERT INTO audit_auditevent (seq, occurred_at, actor_kind, actor_id, actor_name, action, target_type,
                                  target_id, outcome, ip, user_agent, request_id, details, prev_hash, hash)
    VALUES (head_seq, stamp, p_actor_kind, p_actor_id, p_actor_name, p_action, p_target_type, p_target_id,
            p_outcome, p_ip, p_user_agent, p_request_id, p_details, head_hash, link)
    RETURNING id INTO new_id;
    RETURN QUERY SELECT new_id, head_seq, stamp, head_hash, link;
END
$fn$;
"""

DROP = "DROP FUNCTION IF EXISTS audit_append(text, text, text, text, text, text, text, text, inet, text, text, jsonb);"


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunSQL(CREATE, DROP)]
