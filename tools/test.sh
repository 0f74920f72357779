#!/usr/bin/env bash
# Runs the whole suite on SQLite, then on PostgreSQL when MM_TEST_DATABASE_URL is set or a server
# answers on 127.0.0.1:5432 (the runner makes its own throwaway database there). With CI=true a
# missing PostgreSQL is a failure, never a silent skip. Extra arguments go to pytest.
set -u
cd "$(dirname "$0")/.."
py=.venv/bin/python
pg_url="${MM_TEST_DATABASE_URL:-}"
if [ -z "$pg_url" ] && "$py" - <<'PY'
import socket, sys
s = socket.socket()
s.settimeout(2)
try:
    s.connect(("127.0.0.1", 5432))
except OSError:
    sys.exit(1)
PY
then
  pg_url="postgres://postgres@127.0.0.1:5432/postgres"
fi

status=0
ran=()
echo "== tests on SQLite"
env -u MM_TEST_DATABASE_URL "$py" -m pytest "$@"; rc=$?
[ $rc -ne 0 ] && status=$rc
ran+=("sqlite (exit $rc)")

if [ -n "$pg_url" ]; then
  echo "== tests on PostgreSQL"
  MM_TEST_DATABASE_URL="$pg_url" "$py" -m pytest "$@"; rc=$?
  [ $rc -ne 0 ] && status=$rc
  ran+=("postgresql (exit $rc)")
elif [ "${CI:-}" = "true" ]; then
  echo "PostgreSQL is not reachable (set MM_TEST_DATABASE_URL or start it on 127.0.0.1:5432);"
  echo "with CI=true that is a failure."
  status=1
  ran+=("postgresql MISSING")
else
  echo "PostgreSQL not reachable: skipped (set MM_TEST_DATABASE_URL to run it)."
fi
echo "== databases run: ${ran[*]}"
exit $status
