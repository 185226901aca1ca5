#!/usr/bin/env bash
# Writes a self-contained kubeconfig (certificates embedded) for the admin client certificate
# that scripts/lib/certs.sh made: context `hostledger-stack`, default namespace `hostledger`.
#
# usage: kubeconfig.sh CERT_DIR SERVER_URL OUT_FILE
set -euo pipefail

certs=${1:?usage: kubeconfig.sh CERT_DIR SERVER_URL OUT_FILE}
server=${2:?usage: kubeconfig.sh CERT_DIR SERVER_URL OUT_FILE}
out=${3:?usage: kubeconfig.sh CERT_DIR SERVER_URL OUT_FILE}

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
- name: hostledger-admin
  user:
    client-certificate-data: $(b64 "$certs/kube-admin.crt")
    client-key-data: $(b64 "$certs/kube-admin.key")
contexts:
- name: hostledger-stack
  context:
    cluster: hostledger-stack
    user: hostledger-admin
    namespace: hostledger
current-context: hostledger-stack
YAML
mv "$out.partial" "$out"
