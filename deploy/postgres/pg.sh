#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests and development, from the distribution's packages.
#   deploy/postgres/pg.sh up|down|status|url
# Data under $XJ_PG_DIR (default /tmp/xianjie-pg), port $XJ_PG_PORT (default 55433), loopback only.
set -euo pipefail
PORT="${XJ_PG_PORT:-55433}"
DIR="${XJ_PG_DIR:-/tmp/xianjie-pg}"
DB=xianjie_test
URL="postgresql+psycopg://xianjie:xianjie@127.0.0.1:${PORT}/${DB}"

bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$d" ] || [ ! -x "$d/postgres" ]; then
    echo "PostgreSQL server binaries not found: apt-get install -y postgresql" >&2
    exit 3
  fi
  echo "$d"
}

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

up() {
  local bin; bin=$(bindir)
  if as_pg "$bin/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then echo "postgres already up on $PORT"; return 0; fi
  mkdir -p "$DIR"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$DIR"
  if [ ! -f "$DIR/data/PG_VERSION" ]; then
    as_pg "$bin/initdb" -D "$DIR/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
  fi
  as_pg "$bin/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 30 \
    -o "-p $PORT -c listen_addresses=127.0.0.1 -k $DIR -c fsync=off -c max_connections=200" start >/dev/null
  as_pg "$bin/psql" -h 127.0.0.1 -p "$PORT" -U postgres -qtAc \
    "DO \$\$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='xianjie') THEN CREATE ROLE xianjie LOGIN PASSWORD 'xianjie' CREATEDB; END IF; END\$\$;" >/dev/null
  if ! as_pg "$bin/psql" -h 127.0.0.1 -p "$PORT" -U postgres -qtAc "SELECT 1 FROM pg_database WHERE datname='$DB'" | grep -q 1; then
    as_pg "$bin/createdb" -h 127.0.0.1 -p "$PORT" -U postgres -O xianjie "$DB"
  fi
  echo "postgres up: $URL"
}

down() {
  local bin; bin=$(bindir)
  if as_pg "$bin/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
    as_pg "$bin/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null
    echo "postgres stopped"
  else
    echo "postgres not running"
  fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) as_pg "$(bindir)/pg_ctl" -D "$DIR/data" status ;;
  url) echo "$URL" ;;
  *) echo "usage: $0 up|down|status|url" >&2; exit 2 ;;
esac
