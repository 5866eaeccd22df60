#!/usr/bin/env bash
# Installs headless Chromium and its chromedriver from Debian's packages, for the
# `browser` fixture of cqrs-ddd-testing. Does nothing when both are already there.
# Where apt cannot install them (no apt-get, neither root nor password-less sudo, no
# network) it only warns and exits 0: the browser tests then skip, or fail under
# CQRS_DDD_REQUIRE_SERVICES=1 (as in CI), each with a message naming this script.
set -uo pipefail

readonly CHROMIUM=/usr/bin/chromium
readonly CHROMEDRIVER=/usr/bin/chromedriver
readonly PACKAGES=(chromium chromium-driver)

if [ -x "$CHROMIUM" ] && [ -x "$CHROMEDRIVER" ]; then
  echo "== Chromium: $CHROMIUM and $CHROMEDRIVER are installed, leaving them as they are"
  exit 0
fi

warn() {
  echo "!! Chromium not installed: $1; the browser tests will skip" \
    "(or fail under CQRS_DDD_REQUIRE_SERVICES=1)" >&2
  exit 0
}

if ! command -v apt-get >/dev/null 2>&1; then
  warn "apt-get is not available, install ${PACKAGES[*]} by hand"
fi
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    warn "neither root nor password-less sudo, run: sudo apt-get install ${PACKAGES[*]}"
  fi
fi

echo "== Chromium: installing ${PACKAGES[*]} with apt-get (needed by the browser tests)"
LOG="$(mktemp)"
trap 'rm -f "$LOG"' EXIT
apt() {
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q "$@" >>"$LOG" 2>&1
}
install_packages() {
  apt install -y --no-install-recommends "${PACKAGES[@]}"
}
# A stale or missing package list makes the install fail: refresh it once, then retry.
if ! install_packages && ! { apt update && install_packages; }; then
  tail -n 20 "$LOG" >&2
  warn "apt-get could not install ${PACKAGES[*]}"
fi
if [ ! -x "$CHROMIUM" ] || [ ! -x "$CHROMEDRIVER" ]; then
  warn "apt-get finished but $CHROMIUM or $CHROMEDRIVER is missing"
fi
