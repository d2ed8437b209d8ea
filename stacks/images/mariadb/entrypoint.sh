#!/bin/sh
# Sets the password of user racy from DB_PASSWORD, then runs MariaDB in the foreground.
# Extra arguments go to mariadbd (e.g. --innodb-snapshot-isolation=OFF).
set -e
pw=$(printf '%s' "${DB_PASSWORD:-racy}" | sed "s/'/''/g")
printf "ALTER USER 'racy'@'%%' IDENTIFIED BY '%s';\n" "$pw" > /tmp/init.sql
exec mariadbd --init-file=/tmp/init.sql "$@"
