#!/bin/sh
# Initialise the cluster on first start, then run PostgreSQL in the foreground.
set -eu

: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    echo "initialising database cluster in $PGDATA"
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" \
        -E UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256
    rm -f "$pwfile"
    # Accept password logins from other containers.
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"

    if [ "$POSTGRES_DB" != "postgres" ]; then
        # Temporary server on the Unix socket only, to create the database.
        pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
        psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres \
            -c "CREATE DATABASE \"$POSTGRES_DB\" OWNER \"$POSTGRES_USER\""
        pg_ctl -D "$PGDATA" -m fast -w stop
    fi
fi

exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
