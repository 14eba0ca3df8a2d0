#!/usr/bin/env bash
# Create .venv (if missing) and install cimsim with its test extras into it.
#
# torch: pyproject.toml only asks for a range (torch>=2.1). A bare `pip install torch` on Linux
# pulls a multi-GB CUDA build, so when torch is not installed yet this script first looks for a
# torch wheel that pip can already reach without an index (a CPU build kept on disk, through
# pip's find-links) and installs exactly that one. Elsewhere it falls back to pip's normal choice.
# Set CIMSIM_TORCH to force a requirement, e.g. CIMSIM_TORCH="torch==2.5.1".
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)

if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  if [ -n "${CIMSIM_TORCH:-}" ]; then
    "${PIP[@]}" install "$CIMSIM_TORCH"
  else
    tmp=$(mktemp -d)
    if .venv/bin/python -m pip download -q --no-index --no-deps -d "$tmp" "torch>=2.1" 2>/dev/null; then
      wheel=$(ls "$tmp"/torch-*.whl | head -n 1)
      version=$(basename "$wheel" | cut -d- -f2)
      echo "install.sh: using the torch build already on disk: $(basename "$wheel")"
      "${PIP[@]}" install "torch==${version}"
    else
      "${PIP[@]}" install "torch>=2.1"
    fi
    rm -rf "$tmp"
  fi
fi
"${PIP[@]}" install -e ".[dev]"
