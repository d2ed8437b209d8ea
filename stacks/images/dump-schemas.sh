#!/usr/bin/env bash
# Regenerates the schemas baked into the database images (postgres/schema.sql,
# mariadb/schema.sql) from the lab's Django migrations: brings each stack up (its migrate
# service applies whatever the baked schema lacks), dumps the database, brings it down.
# Run it after adding a migration; tests/it/schema.rs fails while a dump is stale.
set -euo pipefail
cd "$(dirname "$0")/../.."
racy=(cargo run --quiet --release --)
dump() { # stack, output file, dump command...
  local stack=$1 out=$2; shift 2
  local up run db
  up=$("${racy[@]}" up "$stack" --set db_password=racy 2>/dev/null)
  run=$(sed -n 's/.*(run \(.*\))$/\1/p' <<<"$up")
  db=$(docker ps --filter "label=racy-matrix.run=$run" --filter "label=racy-matrix.service=db" --format '{{.Names}}')
  { echo "-- The lab's schema after its Django migrations, made by stacks/images/dump-schemas.sh"
    docker exec "$db" "$@"; } > "$out"
  "${racy[@]}" down >/dev/null
  echo "wrote $out"
}
dump django-postgres stacks/images/postgres/schema.sql \
  pg_dump -U racy --no-owner --no-privileges --no-comments racy
dump django-mysql stacks/images/mariadb/schema.sql \
  mariadb-dump -uracy -pracy -h127.0.0.1 --skip-dump-date --skip-comments racy
