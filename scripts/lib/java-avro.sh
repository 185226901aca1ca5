#!/usr/bin/env bash
# Obtains (once) Apache Avro for Java, the reference implementation of the Avro specification,
# with its runtime dependencies, and prints the directory of its jars (a classpath of
# DIR/*). The codec tests compare hostledger's Parsing Canonical Forms and fingerprints with
# its SchemaNormalization. Cached by version under the hostledger cache dir.
#
# usage: dir=$(scripts/lib/java-avro.sh)
set -euo pipefail

AVRO_VERSION=1.12.2   # org.apache.avro:avro on Maven Central

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${HOSTLEDGER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hostledger}
dir=$cache/java-avro/$AVRO_VERSION

if [ ! -f "$dir/avro-$AVRO_VERSION.jar" ]; then
  for tool in java mvn; do
    command -v "$tool" >/dev/null \
      || { echo "error: $tool not found: install Java >= 17 and Maven (needed once, to fetch Avro for Java)" >&2; exit 1; }
  done
  partial=$(mktemp -d "$cache/java-avro-partial.XXXXXX" 2>/dev/null || { mkdir -p "$cache" && mktemp -d "$cache/java-avro-partial.XXXXXX"; })
  trap 'rm -rf "$partial"' EXIT
  log=$partial/mvn.log
  if ! mvn -B -q -Dstyle.color=never -f "$here/avro-pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$partial/jars" -Davro.version="$AVRO_VERSION" \
      >"$log" 2>&1 || [ ! -f "$partial/jars/avro-$AVRO_VERSION.jar" ]; then
    echo "error: could not fetch org.apache.avro:avro:$AVRO_VERSION from Maven Central:" >&2
    tail -20 "$log" >&2
    exit 1
  fi
  mkdir -p "$(dirname "$dir")"
  rm -rf "$dir"
  mv "$partial/jars" "$dir"
fi
echo "$dir"
