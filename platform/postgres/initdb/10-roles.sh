#!/usr/bin/env bash
# Parley's database bootstrap: the two login roles and the database.
#
# The official postgres image runs every script in /docker-entrypoint-initdb.d/
# once, on the first boot of an empty data directory, as the superuser, against a
# temporary server that only listens on the Unix socket. See
# docs/deployment.md ("Two database roles") for why there are two roles.
#
#   parley_owner  NOINHERIT login role. Owns the database, the public schema and
#                 every schema and table created later (migrations, tenant clones).
#                 Used only by the release step (migrate) and the provisioning worker.
#   parley_app    NOINHERIT login role for web, worker and beat. Owns nothing; CONNECT only on
#                 the database (no CREATE, no TEMP); DML on tables through the
#                 owner's default privileges.
#
# Passwords come from PARLEY_DB_OWNER_PASSWORD / PARLEY_DB_APP_PASSWORD, or from the
# files named by PARLEY_DB_OWNER_PASSWORD_FILE / PARLEY_DB_APP_PASSWORD_FILE (Docker
# secrets). They reach psql through its environment (\getenv, psql 15+), never its
# command line, and SQL only as psql variables quoted with :'var', never spliced into
# the SQL text by the shell.
#
# Never run migrations or provisioning as the superuser: objects it creates get none
# of parley_owner's default privileges, so parley_app could not use them.

# The image sources *.sh files that are not executable; run in a child bash instead
# so this script's strict mode and exits cannot leak into the image's entrypoint.
if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
    bash "${BASH_SOURCE[0]}"
    return $?
fi

set -Eeuo pipefail

PARLEY_DB_NAME="${PARLEY_DB_NAME:-parley}"
PARLEY_DB_OWNER="${PARLEY_DB_OWNER:-parley_owner}"
PARLEY_DB_APP="${PARLEY_DB_APP:-parley_app}"

die() {
    echo "10-roles.sh: $*" >&2
    exit 1
}

# read_secret NAME: the value of $NAME, or the content of the file named by $NAME_FILE.
read_secret() {
    local name="$1"
    local file_var="${name}_FILE"
    local direct="${!name:-}"
    local file="${!file_var:-}"
    if [[ -n "$direct" && -n "$file" ]]; then
        die "set $name or $file_var, not both."
    fi
    if [[ -n "$file" ]]; then
        [[ -r "$file" ]] || die "$file_var=$file cannot be read by $(id -un) (check the file's permissions)."
        # Strip a trailing newline the way the application does (it strips whitespace).
        direct="$(<"$file")"
    fi
    direct="${direct#"${direct%%[![:space:]]*}"}"
    direct="${direct%"${direct##*[![:space:]]}"}"
    [[ -n "$direct" ]] || die "$name (or $file_var) must be set to a non-empty password."
    printf '%s' "$direct"
}

for identifier in "$PARLEY_DB_NAME" "$PARLEY_DB_OWNER" "$PARLEY_DB_APP"; do
    [[ "$identifier" =~ ^[a-z_][a-z0-9_]*$ ]] || die "'$identifier' is not a plain lower-case SQL identifier."
done

owner_password="$(read_secret PARLEY_DB_OWNER_PASSWORD)"
app_password="$(read_secret PARLEY_DB_APP_PASSWORD)"
[[ "$owner_password" != "$app_password" ]] || die "the owner and app passwords must differ."

psql_super=(
    psql
    -v ON_ERROR_STOP=1
    --no-psqlrc
    --username "${POSTGRES_USER:-postgres}"
    -v db="$PARLEY_DB_NAME"
    -v owner="$PARLEY_DB_OWNER"
    -v app="$PARLEY_DB_APP"
)

# 1. As the superuser, in the maintenance database: roles and the database.
#    CREATE DATABASE cannot run inside a transaction block, so no --single-transaction.
PARLEY_INIT_OWNER_PASSWORD="$owner_password" PARLEY_INIT_APP_PASSWORD="$app_password" \
    "${psql_super[@]}" --dbname "${POSTGRES_DB:-postgres}" <<-'EOSQL'
	\getenv owner_password PARLEY_INIT_OWNER_PASSWORD
	\getenv app_password PARLEY_INIT_APP_PASSWORD
	CREATE ROLE :"owner" LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
	    PASSWORD :'owner_password';
	-- NOINHERIT too (as parley/dbroles.py does): should the app role ever be granted
	-- membership in another role, it would not silently gain that role's rights.
	CREATE ROLE :"app" LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
	    PASSWORD :'app_password';
	CREATE DATABASE :"db" OWNER :"owner" ENCODING 'UTF8' TEMPLATE template0;
EOSQL

# 2. In the new database. As the superuser: PostgreSQL 15 makes public owned by
#    pg_database_owner, which a NOINHERIT owner cannot act through, so hand the
#    schema over; shut PUBLIC out of the database (CONNECT, CREATE, TEMP) and let
#    the app role only connect. Then as the owner: what the app role may use now
#    (public) and in everything the owner creates later (tenant schemas, tables,
#    sequences).
"${psql_super[@]}" --dbname "$PARLEY_DB_NAME" --single-transaction <<-'EOSQL'
	ALTER SCHEMA public OWNER TO :"owner";
	REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
	REVOKE CREATE, TEMPORARY ON DATABASE :"db" FROM :"app";
	GRANT CONNECT ON DATABASE :"db" TO :"app";
	-- Already the PostgreSQL 15 default; repeated so an older server cannot give
	-- the app role CREATE through PUBLIC.
	REVOKE CREATE ON SCHEMA public FROM PUBLIC;

	SET ROLE :"owner";
	GRANT USAGE ON SCHEMA public TO :"app";
	ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" GRANT USAGE ON SCHEMAS TO :"app";
	ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app";
	ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" GRANT USAGE, SELECT ON SEQUENCES TO :"app";
	RESET ROLE;
EOSQL

echo "10-roles.sh: created database $PARLEY_DB_NAME, owner role $PARLEY_DB_OWNER (NOINHERIT) and app role $PARLEY_DB_APP."
