#!/bin/sh
# Sets the password of user racy from DB_PASSWORD (single-user mode, before any client
# can connect), then runs PostgreSQL in the foreground. Extra arguments go to postgres.
set -e
pw=$(printf '%s' "${DB_PASSWORD:-racy}" | sed "s/'/''/g")
echo "ALTER USER racy PASSWORD '$pw'" | postgres --single -D "$PGDATA" -j postgres > /dev/null
exec postgres -D "$PGDATA" "$@"
