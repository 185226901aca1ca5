#!/usr/bin/env bash
# Writes a self-contained kubeconfig (certificates embedded) for a client certificate that
# scripts/lib/certs.sh made (the admin's unless IDENTITY names another: kube-projector,
# kube-reader, kube-operator): context `hostledger-stack`, default namespace `hostledger`.
#
# usage: kubeconfig.sh CERT_DIR SERVER_URL OUT_FILE [IDENTITY]
set -euo pipefail

usage="usage: kubeconfig.sh CERT_DIR SERVER_URL OUT_FILE [IDENTITY]"
certs=${1:?$usage}
server=${2:?$usage}
out=${3:?$usage}
identity=${4:-kube-admin}
[ -s "$certs/$identity.crt" ] || { echo "error: $certs/$identity.crt does not exist" >&2; exit 1; }
user=hostledger-${identity#kube-}

b64() { base64 <"$1" | tr -d '\n'; }

umask 077
cat >"$out.partial" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: hostledger-stack
  cluster:
    server: $server
    certificate-authority-data: $(b64 "$certs/kube-ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(b64 "$certs/$identity.crt")
    client-key-data: $(b64 "$certs/$identity.key")
contexts:
- name: hostledger-stack
  context:
    cluster: hostledger-stack
    user: $user
    namespace: hostledger
current-context: hostledger-stack
YAML
mv "$out.partial" "$out"
