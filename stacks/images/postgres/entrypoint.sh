#!/bin/sh
# Sets the password of user racy from DB_PASSWORD (single-user mode, before any client
# can connect), then runs PostgreSQL in the foreground. Extra arguments go to postgres.
#
# DB_FRESH=1: ignore the cluster the image carries and make a new one at start, as a
# database image that initialises on first run does (seed 000's stacks): initdb, a
# server on the Unix socket only to create the user and the database, stop, then the
# real server on TCP. No schema: the app's migrations make it.
set -e
pw=$(printf '%s' "${DB_PASSWORD:-racy}" | sed "s/'/''/g")
if [ "${DB_FRESH:-0}" = 1 ]; then
  PGDATA=/tmp/pgdata
  export PGDATA
  rm -rf "$PGDATA"
  initdb -D "$PGDATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 > /dev/null
  {
    echo "listen_addresses = '*'"
    echo "max_connections = 300"
    echo "synchronous_commit = off"
  } >> "$PGDATA/postgresql.conf"
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start > /dev/null
  psql -q -U postgres -v ON_ERROR_STOP=1 \
    -c "CREATE USER racy PASSWORD '$pw'" -c "CREATE DATABASE racy OWNER racy" > /dev/null
  pg_ctl -D "$PGDATA" -w -m fast stop > /dev/null
  exec postgres -D "$PGDATA" "$@"
fi
echo "ALTER USER racy PASSWORD '$pw'" | postgres --single -D "$PGDATA" -j postgres > /dev/null
exec postgres -D "$PGDATA" "$@"
