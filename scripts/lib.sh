# Shared by scripts/start.sh and scripts/test.sh: a virtualenv in .venv with pinned packages.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
PYTHON="${PYTHON:-python3}"
VENV="$REPO/.venv"

# ensure_venv base|dev: create .venv once; reinstall only when a requirements file changed.
ensure_venv() {
  local which="$1" stamp
  if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating $VENV with $($PYTHON --version)"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
  fi
  stamp="$VENV/.installed-$which-$(cat requirements/*.txt | sha256sum | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    echo "==> installing requirements/$which.txt (pinned by requirements/lock.txt)"
    "$VENV/bin/pip" install --quiet -r "requirements/$which.txt" -c requirements/lock.txt
    touch "$stamp"
  fi
}

port_open() {  # port_open HOST PORT
  "$VENV/bin/python" -c "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 1)" "$1" "$2" 2>/dev/null
}
