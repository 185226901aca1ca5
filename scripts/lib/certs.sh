#!/usr/bin/env bash
# Generates the certificates of the local stack (scripts/stack) into CERT_DIR, skipping those
# that already exist. Two separate CAs, so a Kafka client certificate is not also a Kubernetes
# identity:
#
#   kube-ca.{crt,key}              CA for kube-apiserver serving and client certificates
#   kube-apiserver.{crt,key}       serving cert: 127.0.0.1, localhost, 10.0.0.1, kubernetes.default…
#   kube-admin.{crt,key}           client cert CN=hostledger-admin, O=system:masters (installation only)
#   kube-projector.{crt,key}       client cert CN=hostledger-projector (bound to hostledger:projector)
#   kube-reader.{crt,key}          client cert CN=hostledger-reader (bound to hostledger:reader)
#   kube-operator.{crt,key}        client cert CN=hostledger-operator, O=hostledger-operators
#   service-account.{key,pub}      RSA key pair that signs and verifies service-account tokens
#   kafka-ca.{crt,key}             CA for the Kafka SSL listener (both directions)
#   kafka-broker.{crt,key}         broker cert CN=hostledger-kafka-broker (a super user): serving on
#                                  127.0.0.1 and localhost, and client of its own controller listener
#   kafka-broker.p12               PKCS#12 keystore (broker key + chain), password in kafka-store.pass
#   kafka-truststore.p12           PKCS#12 truststore holding kafka-ca.crt (made with keytool)
#   kafka-admin.{crt,key,p12}      client cert CN=hostledger-admin, a super user (topics and ACLs only)
#   kafka-fetcher.{crt,key}        client cert CN=hostledger-fetcher (ACLs of a fetcher, any source)
#   kafka-projector.{crt,key}      client cert CN=hostledger-projector (ACLs of the projector)
#   kafka-reader.{crt,key}         client cert CN=hostledger-reader (ACLs of a reader)
#   kafka-backfill.{crt,key}       client cert CN=hostledger-backfill (a fetcher's ACLs + reading events)
# The brokers take a client certificate's common name as its principal (User:CN).
#
# usage: certs.sh CERT_DIR
set -euo pipefail

dir=${1:?usage: certs.sh CERT_DIR}
mkdir -p "$dir"
chmod 700 "$dir"
cd "$dir"
umask 077

days=3650
store_pass=hostledger-stack   # local throw-away stores; the password only satisfies the JVM.

new_key() { # FILE
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null
}

new_ca() { # NAME CN
  [ -s "$1.crt" ] && [ -s "$1.key" ] && return 0
  new_key "$1.key"
  openssl req -x509 -new -key "$1.key" -sha256 -days "$days" -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$1.crt"
}

new_cert() { # NAME CA SUBJECT EXT_KEY_USAGE [SAN]
  local name=$1 ca=$2 subject=$3 eku=$4 san=${5:-}
  [ -s "$name.crt" ] && [ -s "$name.key" ] && return 0
  new_key "$name.key"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [ -n "$san" ] && echo "subjectAltName=$san"
  } > "$name.ext"
  openssl req -new -key "$name.key" -subj "$subject" -out "$name.csr"
  openssl x509 -req -in "$name.csr" -CA "$ca.crt" -CAkey "$ca.key" -CAcreateserial \
    -sha256 -days "$days" -extfile "$name.ext" -out "$name.crt" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}

# Kubernetes.
new_ca kube-ca "hostledger-stack kube CA"
new_cert kube-apiserver kube-ca "/CN=kube-apiserver" serverAuth \
  "IP:127.0.0.1,DNS:localhost,IP:10.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
new_cert kube-admin kube-ca "/O=system:masters/CN=hostledger-admin" clientAuth
# One identity per role (deploy/policies/identities.yaml); scripts/stack binds each in the
# inventory's namespace.
new_cert kube-projector kube-ca "/CN=hostledger-projector" clientAuth
new_cert kube-reader kube-ca "/CN=hostledger-reader" clientAuth
new_cert kube-operator kube-ca "/O=hostledger-operators/CN=hostledger-operator" clientAuth
if [ ! -s service-account.key ] || [ ! -s service-account.pub ]; then
  new_key service-account.key
  openssl pkey -in service-account.key -pubout -out service-account.pub
fi

# The aggregation layer: kube-apiserver proxies requests for hostledger's history API to
# `hostledger history-server`, authenticating itself with the front-proxy client certificate.
new_ca front-proxy-ca "hostledger-stack front-proxy CA"
new_cert front-proxy-client front-proxy-ca "/CN=front-proxy-client" clientAuth
# The history server's serving certificate: kube-apiserver reaches it at this machine's own
# (non-loopback) address, since Service endpoints may not be loopback addresses.
host_ip=${HOSTLEDGER_HOST_IP:-$(hostname -I 2>/dev/null | tr ' ' '\n' | grep -m1 '^[0-9.]\+$' || true)}
new_cert history-server kube-ca "/CN=hostledger-history.hostledger-system.svc" serverAuth \
  "IP:127.0.0.1,DNS:localhost${host_ip:+,IP:$host_ip},DNS:hostledger-history.hostledger-system.svc"

# Kafka.
new_ca kafka-ca "hostledger-stack kafka CA"
# A state dir from before the brokers authorized anyone named its broker CN=localhost.
if [ -s kafka-broker.crt ] && ! openssl x509 -in kafka-broker.crt -noout -subject | grep -q hostledger-kafka-broker; then
  rm -f kafka-broker.crt kafka-broker.key kafka-broker.p12 kafka-client.crt kafka-client.key
fi
new_cert kafka-broker kafka-ca "/CN=hostledger-kafka-broker" "serverAuth,clientAuth" "IP:127.0.0.1,DNS:localhost"
for identity in admin fetcher projector reader backfill; do
  new_cert "kafka-$identity" kafka-ca "/CN=hostledger-$identity" clientAuth
done
[ -s kafka-store.pass ] || printf '%s' "$store_pass" > kafka-store.pass
pass=$(cat kafka-store.pass)
# The admin's identity for the broker's own Java tools (scripts/stack: topics, ACLs).
if [ ! -s kafka-admin.p12 ]; then
  openssl pkcs12 -export -name admin -in kafka-admin.crt -inkey kafka-admin.key \
    -certfile kafka-ca.crt -passout "pass:$pass" -out kafka-admin.p12.partial
  mv kafka-admin.p12.partial kafka-admin.p12
fi
if [ ! -s kafka-broker.p12 ]; then
  openssl pkcs12 -export -name broker -in kafka-broker.crt -inkey kafka-broker.key \
    -certfile kafka-ca.crt -passout "pass:$pass" -out kafka-broker.p12.partial
  mv kafka-broker.p12.partial kafka-broker.p12
fi
if [ ! -s kafka-truststore.p12 ]; then
  rm -f kafka-truststore.p12.partial
  keytool -importcert -noprompt -alias hostledger-kafka-ca -file kafka-ca.crt \
    -storetype PKCS12 -keystore kafka-truststore.p12.partial -storepass "$pass" >/dev/null 2>&1 \
    || { echo "error: keytool could not create kafka-truststore.p12" >&2; exit 1; }
  mv kafka-truststore.p12.partial kafka-truststore.p12
fi

# Readable by the user's tools; the directory itself stays private.
chmod 600 ./*.key
chmod 644 ./*.crt ./*.pub
