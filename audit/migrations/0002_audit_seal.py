"""audit_seal(schema): chain the unsealed events of a schema, oldest first.

It takes the chain's advisory lock (class 0x41554454 "AUDT", key: hash of the
schema), reads the head with a fresh snapshot, and gives each unsealed event,
in id order, the next sequence number, the head's hash as prev_hash and

    hash = SHA-256("<seq>|<occurred_at>|<prev_hash>|<content_hash>")

in one transaction. Events are written unsealed inside the action's own
transaction (no lock), and sealed right after it commits, so writers never
wait on each other for the length of a transaction, and one seal (one commit)
can chain many events.
"""

from django.db import migrations

CREATE = r"""
CREATE OR REPLACE FUNCTION audit_seal(p_schema text, max_rows integer DEFAULT 10000) RETURNS integer
LANGUAGE plpgsql VOLATILE
-- Runs with the owner's rights: the app role has no UPDATE on the audit table
-- at all; this function is the one way an event gets its seq and hashes. A
-- fixed search_path keeps the caller's path out.
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    head_seq bigint;
    head_hash text;
    pending record;
    link text;
    sealed integer := 0;
BEGIN
    IF to_regclass(format('%I.audit_auditevent', p_schema)) IS NULL THEN
        RAISE EXCEPTION 'no audit table in schema %', p_schema;
    END IF;
    PERFORM pg_advisory_xact_lock(1096107092, hashtext(p_schema));
    -- Statements below name the table without a schema: the path is set here
    -- (built-ins first, so nothing in the schema can stand in for them), and
    -- restored when the function returns. Static SQL keeps cached plans.
    PERFORM set_config('search_path', 'pg_catalog, ' || quote_ident(p_schema), true);
    SELECT a.seq, a.hash INTO head_seq, head_hash
      FROM audit_auditevent a WHERE a.seq IS NOT NULL ORDER BY a.seq DESC LIMIT 1;
    head_seq := coalesce(head_seq, 0);
    head_hash := coalesce(head_hash, repeat('0', 64));
    FOR pending IN
        SELECT a.id, a.occurred_at, a.content_hash FROM audit_auditevent a
         WHERE a.seq IS NULL ORDER BY a.id LIMIT max_rows
    LOOP
        head_seq := head_seq + 1;
        link := encode(sha256(convert_to(
            head_seq::text || '|'
            || to_char(pending.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
            || '|' || head_hash || '|' || pending.content_hash, 'UTF8')), 'hex');
        UPDATE audit_auditevent SET seq = head_seq, prev_hash = head_hash, hash = link WHERE id = pending.id;
        head_hash := link;
        sealed := sealed + 1;
    END LOOP;
    RETURN sealed;
END
$fn$;
"""

# For an event that is its own transaction (no action around it): insert and
# seal in one statement, one commit.
CREATE_RECORD = r"""
CREATE OR REPLACE FUNCTION audit_record_sealed(
    p_occurred_at timestamptz, p_actor_kind text, p_actor_id text, p_actor_name text, p_action text,
    p_target_type text, p_target_id text, p_outcome text, p_ip inet, p_user_agent text,
    p_request_id text, p_details jsonb, p_content_hash text
) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    new_id bigint;
BEGIN
    INSERT INTO audit_auditevent (occurred_at, actor_kind, actor_id, actor_name, action, target_type,
                                  target_id, outcome, ip, user_agent, request_id, details, content_hash)
    VALUES (p_occurred_at, p_actor_kind, p_actor_id, p_actor_name, p_action, p_target_type, p_target_id,
            p_outcome, p_ip, p_user_agent, p_request_id, p_details, p_content_hash)
    RETURNING id INTO new_id;
    PERFORM audit_seal(current_schema(), 10000);
    RETURN new_id;
END
$fn$;
"""

DROP = "DROP FUNCTION IF EXISTS audit_seal(text, integer);"
DROP_RECORD = (
    "DROP FUNCTION IF EXISTS audit_record_sealed(timestamptz, text, text, text, text, text, text, text, "
    "inet, text, text, jsonb, text);"
)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunSQL(CREATE, DROP), migrations.RunSQL(CREATE_RECORD, DROP_RECORD)]
