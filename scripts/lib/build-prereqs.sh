# Sourced by scripts/demo, scripts/test and scripts/bench: checks, before anything is
# downloaded or built, that the machine can build hostledger, and says what to install if not.

require_build_tools() {
  local missing=()
  command -v cargo >/dev/null || missing+=("cargo (Rust: https://rustup.rs)")
  command -v cc >/dev/null || missing+=("a C compiler (Debian/Ubuntu: apt install build-essential)")
  command -v make >/dev/null || missing+=("make (Debian/Ubuntu: apt install build-essential)")
  if ! command -v pkg-config >/dev/null; then
    missing+=("pkg-config (Debian/Ubuntu: apt install pkg-config)")
  elif ! pkg-config --exists openssl; then
    missing+=("the OpenSSL headers, for Kafka's TLS (Debian/Ubuntu: apt install libssl-dev; Fedora: dnf install openssl-devel)")
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    echo "error: building hostledger needs:" >&2
    printf '  - %s\n' "${missing[@]}" >&2
    exit 1
  fi
}
