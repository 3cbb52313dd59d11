#!/usr/bin/env bash
# Prerequisites shared by scripts/run.sh and scripts/test.sh on a fresh Debian machine:
#   - Debian packages: libclang-dev (bindgen for RocksDB's C++ build), a C++ compiler,
#     python3-venv when the caller needs Python (`prereqs.sh python`), and a JDK 17 + Maven
#     when it needs Java for the Flink connector (`prereqs.sh java`); modes combine
#     (`prereqs.sh python java`);
#   - the Rust toolchain must already be there (rustup); we say so clearly if it is not.
# Sourced by both (so a cargo found in ~/.cargo/bin lands on their PATH); idempotent: installs
# only what is missing.
set -euo pipefail

want=(libclang-dev g++ make)
for mode in "$@"; do
  case "$mode" in
    python) want+=(python3-venv) ;;
    java) want+=(openjdk-17-jdk-headless maven) ;;
  esac
done
missing=()
for pkg in "${want[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  for candidate in "$HOME/.cargo/bin/cargo"; do
    [ -x "$candidate" ] && export PATH="$(dirname "$candidate"):$PATH"
  done
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "error: the Rust toolchain (cargo) is not installed; install it with rustup (https://rustup.rs), then run this again" >&2
  exit 1
fi
