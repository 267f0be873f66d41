#!/usr/bin/env bash
# Makes the fixed TLS test files that tannoy-server's doc examples read:
# a CA (ca.crt), and a server certificate for localhost / 127.0.0.1 / ::1
# signed by it (server.crt, server.key), valid for 100 years. They secure
# nothing: the key is public. Tests generate their own certificates at run
# time (rcgen); only doc examples, which need files on disk, use these.
set -euo pipefail
cd "$(dirname "$0")"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout ca.key -out ca.crt -days 36500 -subj "/CN=tannoy test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout server.key -out server.csr -subj "/CN=localhost"
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
    -out server.crt -days 36500 \
    -extfile <(printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n')
rm -f server.csr ca.key ca.srl
