#!/usr/bin/env bash
# One entry point for set-up and the two jobs of the README:
#   ./dev.sh demo   generate the default design, simulate it under cocotb against the golden model
#   ./dev.sh test   run the default test suite (pytest -n 2 with work stealing, the 25 slowest tests listed); extra arguments go to pytest
# Any other arguments run the attn-rtl CLI inside the project's virtual environment:
#   ./dev.sh golden --inputs qkv.npz --output o.npz --json
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"
venv="$root/.venv"
# A checkout keeps its builds and conversions in .cache/ (an installed attn-rtl uses the user's cache folder).
export ATTN_RTL_CACHE="${ATTN_RTL_CACHE:-$root/.cache}"

say() { echo "dev.sh: $*" >&2; }
die() { say "$*"; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo -n "$@"
  else return 1
  fi
}

ensure_icarus() {
  if ! command -v iverilog >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 \
      || die "Icarus Verilog (>= 11) is missing and there is no apt-get: install the package 'iverilog' with your package manager"
    say "installing Icarus Verilog (Debian package 'iverilog')"
    { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iverilog >/dev/null; } \
      || die "could not install Icarus Verilog: run 'apt-get install iverilog' as root, then retry"
  fi
  local major
  major="$(iverilog -V 2>/dev/null | sed -n 's/^Icarus Verilog version \([0-9]*\).*/\1/p' | head -n 1)"
  [ -n "$major" ] && [ "$major" -ge 11 ] \
    || die "Icarus Verilog >= 11 is required, found '$(iverilog -V 2>&1 | head -n 1)': upgrade the package 'iverilog'"
}

ensure_venv() {
  command -v python3 >/dev/null 2>&1 || die "python3 (>= 3.11) is missing: install the package 'python3'"
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "Python >= 3.11 is required, found $(python3 --version 2>&1)"
  if [ ! -x "$venv/bin/python" ]; then
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
      rm -rf "$venv"
      say "python3 cannot create a virtual environment; installing the package 'python3-venv'"
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null \
        || die "install the package 'python3-venv' as root, then retry"
      python3 -m venv "$venv"
    fi
  fi
  # Reinstall only when the declared dependencies change.
  local stamp="$venv/.attn-rtl-installed" want
  want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    say "installing Python dependencies into .venv (log: .venv/pip.log)"
    { "$venv/bin/python" -m pip install --upgrade pip && "$venv/bin/python" -m pip install -e ".[test]"; } \
      > "$venv/pip.log" 2>&1 || { tail -n 30 "$venv/pip.log" >&2; die "pip install failed (full log: .venv/pip.log)"; }
    echo "$want" > "$stamp"
  fi
}

ensure_icarus
ensure_venv


case "${1:-demo}" in
  demo) shift || true; exec "$venv/bin/attn-rtl" sim --sim verilator "$@" ;;
  test) shift; exec "$venv/bin/python" -m pytest -n 2 --dist worksteal --durations=25 "$@" ;;
  *) exec "$venv/bin/attn-rtl" "$@" ;;
esac
