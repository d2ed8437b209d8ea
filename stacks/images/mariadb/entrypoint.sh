#!/bin/sh
# Sets the password of user racy from DB_PASSWORD, then runs MariaDB in the foreground.
# Extra arguments go to mariadbd (e.g. --innodb-snapshot-isolation=OFF).
#
# DB_FRESH=1: ignore the data directory the image carries and make a new one at start,
# as a database image that initialises on first run does (seed 000's stacks):
# mariadb-install-db, a server without networking to create the user and the database,
# shut down, then the real server on TCP. No schema: the app's migrations make it.
set -e
pw=$(printf '%s' "${DB_PASSWORD:-racy}" | sed "s/'/''/g")
if [ "${DB_FRESH:-0}" = 1 ]; then
  datadir=/tmp/mysql
  sock=/tmp/init.sock
  rm -rf "$datadir"
  # root without a password, for the server below that only this container can reach
  mariadb-install-db --datadir="$datadir" --skip-test-db \
    --auth-root-authentication-method=normal > /dev/null
  mariadbd --datadir="$datadir" --skip-networking --socket="$sock" &
  init=$!
  until mariadb-admin --socket="$sock" ping > /dev/null 2>&1; do
    kill -0 "$init" 2> /dev/null || exit 1
    sleep 0.1
  done
  printf "CREATE DATABASE racy; CREATE USER 'racy'@'%%' IDENTIFIED BY '%s'; GRANT ALL ON racy.* TO 'racy'@'%%';\n" "$pw" \
    | mariadb -u root --socket="$sock"
  mariadb-admin -u root --socket="$sock" shutdown
  wait "$init"
  exec mariadbd --datadir="$datadir" "$@"
fi
printf "ALTER USER 'racy'@'%%' IDENTIFIED BY '%s';\n" "$pw" > /tmp/init.sql
exec mariadbd --init-file=/tmp/init.sql "$@"
