#!/usr/bin/env bash
# Reads hostledger's event log with Kafka's Java client and Apache Avro for Java (not
# hostledger's code), and prints each event as one JSON line, as examples/consumers/python
# does: {"key", "partition", "offset", "event"}, or "poison" with the reason for a message
# that is not an event. Consume.java beside this file says how.
#
#     examples/consumers/java/run.sh --bootstrap 127.0.0.1:19092 --schemas schemas/avro
#
# Options: --schemas DIR (the .avsc writer schemas; required), --bootstrap HOST:PORT (default
# $HOSTLEDGER_KAFKA_BOOTSTRAP or 127.0.0.1:19092), --topic TOPIC (default
# hostledger.host-events), --idle-secs N (stop after N seconds without a message; default 5),
# --follow (never stop).
#
# Needs Java >= 17, and Maven once: the first run copies the jars of pom.xml (kafka-clients,
# avro, slf4j-nop and their dependencies) from Maven Central into
# ${HOSTLEDGER_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/hostledger}/java-consumer/HASH-OF-POM;
# later runs use them. Consume.java runs with Java's source launcher: no build step.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${HOSTLEDGER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hostledger}

command -v java >/dev/null || { echo "error: java not found: install Java >= 17" >&2; exit 1; }

if command -v sha256sum >/dev/null; then
  key=$(sha256sum <"$here/pom.xml" | cut -c1-12)
else
  key=$(shasum -a 256 <"$here/pom.xml" | cut -c1-12)   # macOS
fi
deps=$cache/java-consumer/$key

# The directory appears whole (mv of a complete download), so its existence means complete.
if [ ! -d "$deps" ]; then
  command -v mvn >/dev/null \
    || { echo "error: mvn not found: install Maven (needed once, to fetch the consumer's jars)" >&2; exit 1; }
  mkdir -p "$cache/java-consumer"
  partial=$(mktemp -d "$cache/java-consumer/partial.XXXXXX")
  trap 'rm -rf "$partial"' EXIT
  log=$partial/mvn.log
  echo "fetching the consumer's jars into $deps (once)" >&2
  if ! mvn -B -q -Dstyle.color=never -f "$here/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$partial/jars" >"$log" 2>&1 \
      || ! compgen -G "$partial/jars/kafka-clients-*.jar" >/dev/null \
      || ! compgen -G "$partial/jars/avro-*.jar" >/dev/null; then
    echo "error: could not fetch the consumer's jars (examples/consumers/java/pom.xml) from Maven Central:" >&2
    tail -20 "$log" | sed "s/$(printf '\033')\[[0-9;]*m//g" >&2   # Maven 3.8 colours some lines anyway
    exit 1
  fi
  # A concurrent first run may have won; its copy is as good.
  [ -d "$deps" ] || mv "$partial/jars" "$deps"
  rm -rf "$partial"
  trap - EXIT
fi

exec java -cp "$deps/*" "$here/Consume.java" "$@"
