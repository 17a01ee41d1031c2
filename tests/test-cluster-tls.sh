#!/usr/bin/env bash
# Fleet mode over TLS to etcd (--cluster etcds://): an etcd member on
# host 1 that serves its clients over TLS only and asks each for a
# certificate its CA signed (--client-cert-auth).
#  - handoffd on hosts 1 and 2 with --cluster-ca, --cluster-cert and
#    --cluster-key join: each lists both, and etcd holds their entries.
#  - Refused at start, with a message that says why, and nothing of the
#    host in etcd: plain etcd:// to the TLS port; a CA that did not sign
#    the member's certificate; no client certificate; one another CA
#    signed; a certificate without its key; a CA with etcd://; a CA file
#    that is not there; the TLS options without --cluster.
#  - --metrics over HTTPS on host 2's address: host 1 scrapes it with
#    the CA, and plain HTTP gets nothing.  Refused at start: metrics on
#    an address other than loopback without a certificate, a
#    certificate without its key, a name instead of an address, the
#    certificate options without --metrics, an address in use.
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/handoffd.sh"
requires etcd --version
requires etcdctl version
requires openssl version
requires curl --version
requires_netns
make_tmpdir
cd "$tmp" || fail "cannot enter $tmp"
make_hosts 2

# sign NAME CN EXT [CA]: NAME.key and NAME.pem, signed by CA (ca).
sign ()
{
  local name=$1 cn=$2 ext=$3 ca=${4:-ca}
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$name.key" -out "$name.csr" -subj "/CN=$cn" 2>/dev/null
  printf '%b\n' "$ext" > "$name.ext"
  openssl x509 -req -in "$name.csr" -CA "$ca.pem" -CAkey "$ca.key" \
    -CAcreateserial -out "$name.pem" -days 2 -extfile "$name.ext" 2>/dev/null ||
    fail "cannot sign $name"
}
for ca in ca other-ca; do
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$ca.key" -out "$ca.pem" -days 2 -subj "/CN=handoff test $ca" \
    2>/dev/null || fail "cannot make $ca"
done
# The member's certificate serves its gateway's own client connection
# too: both usages.
sign server etcd1 "subjectAltName=IP:${HOST_IP[1]}\nextendedKeyUsage=serverAuth,clientAuth"
sign client handoff "extendedKeyUsage=clientAuth"
sign rogue handoff "extendedKeyUsage=clientAuth" other-ca
sign metrics host2 "subjectAltName=IP:${HOST_IP[2]}\nextendedKeyUsage=serverAuth"

ep=${HOST_IP[1]}:2379
on_host 1 etcd --name e1 --data-dir "$tmp/etcd1" \
  --listen-client-urls "https://$ep" --advertise-client-urls "https://$ep" \
  --listen-peer-urls "http://${HOST_IP[1]}:2380" \
  --initial-advertise-peer-urls "http://${HOST_IP[1]}:2380" \
  --initial-cluster "e1=http://${HOST_IP[1]}:2380" \
  --cert-file server.pem --key-file server.key --trusted-ca-file ca.pem \
  --client-cert-auth > etcd1.log 2>&1 &
echo $! > etcd1.pid
cleanup_fn kill_pidfile "$tmp/etcd1.pid"
ectl ()
{
  on_host 1 env ETCDCTL_API=3 etcdctl --endpoints "https://$ep" \
    --cacert ca.pem --cert client.pem --key client.key "$@"
}
wait_for 60 "etcd over TLS" ectl endpoint health

handoff keygen k.psk >/dev/null 2>&1
tls=(--cluster-ca "$tmp/ca.pem" --cluster-cert "$tmp/client.pem"
     --cluster-key "$tmp/client.key")
HD_NO_PEERS=1 start_handoffd 1 --cluster "etcds://$ep" "${tls[@]}" \
  --cluster-ttl 4s
HD_NO_PEERS=1 start_handoffd 2 --cluster "etcds://$ep" "${tls[@]}" \
  --cluster-ttl 4s --metrics "${HOST_IP[2]}:9469" \
  --metrics-cert "$tmp/metrics.pem" --metrics-key "$tmp/metrics.key"
sees ()
{
  [ "$(hcli "$1" cluster hosts --json | jq -r '[.hosts[].name] | sort | join(",")')" = host1,host2 ]
}
wait_for 20 "host 1 to see both members over TLS" sees 1
sees 2 || fail "host 2 does not see both members"
hcli 1 cluster hosts
[ "$(ectl get --prefix --keys-only /handoff/hosts/ | grep -c .)" = 2 ] ||
  fail "etcd does not hold both hosts' entries"
grep -q "plain HTTP" "$tmp/h1.log" && fail "handoffd warns of plain HTTP over etcds://"

# Host 2's metrics over HTTPS, from host 1; not over plain HTTP.
on_host 1 curl -sf --cacert ca.pem "https://${HOST_IP[2]}:9469/metrics" > m.txt ||
  fail "host 1 cannot scrape host 2's metrics over HTTPS"
grep -q '^handoff_cluster_member 1$' m.txt && grep -q '^handoff_cluster_lease_live 1$' m.txt ||
  fail "host 2's metrics do not show its cluster lease: $(grep cluster m.txt)"
on_host 1 curl -sf "http://${HOST_IP[2]}:9469/metrics" > /dev/null 2>&1 &&
  fail "host 2's metrics answered plain HTTP"
echo "host 2's metrics: HTTPS only, $(grep -c '^handoff_' m.txt) series"

# refused TEXT ARGS...: handoffd (host9, on host 2) with ARGS exits
# non-zero at start, says TEXT, and leaves nothing of itself in etcd.
n=0
refused ()
{
  local text=$1 rc=0
  shift
  on_host 2 timeout 60 handoffd --name host9 --state-dir "$tmp/h9" \
    --listen "tcp://${HOST_IP[2]}:7899" --control "$tmp/h9.sock" \
    --psk k.psk "$@" > bad.log 2>&1 || rc=$?
  sed 's/^/    | /' bad.log
  [ "$rc" != 0 ] && [ "$rc" != 124 ] ||
    fail "handoffd $* exited $rc, not refused at start"
  grep -qi -- "$text" bad.log || fail "handoffd $* does not say '$text'"
  [ -z "$(ectl get --keys-only /handoff/hosts/host9)" ] ||
    fail "handoffd $* left an entry in etcd"
  n=$((n + 1))
}
refused "does the member serve TLS" --cluster "etcd://$ep"
refused "certificate" --cluster "etcds://$ep" --cluster-ca "$tmp/other-ca.pem" \
  --cluster-cert "$tmp/client.pem" --cluster-key "$tmp/client.key"
refused "ask for a client certificate" --cluster "etcds://$ep" --cluster-ca "$tmp/ca.pem"
refused "refuse this host's client certificate" --cluster "etcds://$ep" --cluster-ca "$tmp/ca.pem" \
  --cluster-cert "$tmp/rogue.pem" --cluster-key "$tmp/rogue.key"
refused "needs its key" --cluster "etcds://$ep" --cluster-ca "$tmp/ca.pem" \
  --cluster-cert "$tmp/client.pem"
refused "for etcds://" --cluster "etcd://$ep" --cluster-ca "$tmp/ca.pem"
refused "no such file" --cluster "etcds://$ep" --cluster-ca "$tmp/nothing.pem"
refused "are for --cluster" --cluster-ca "$tmp/ca.pem"
refused "every member" --cluster "etcds://$ep,etcd://${HOST_IP[2]}:2379"
refused "not a loopback address" --metrics "${HOST_IP[2]}:9470"
refused "go together" --metrics 127.0.0.1:9470 --metrics-cert "$tmp/metrics.pem"
refused "an IP address, not a name" --metrics localhost:9470
refused "are for --metrics" --metrics-key "$tmp/metrics.key"
refused "cannot serve metrics on" --metrics "${HOST_IP[2]}:9469" \
  --metrics-cert "$tmp/metrics.pem" --metrics-key "$tmp/metrics.key"
echo "$n bad starts refused, nothing of them in etcd"
sees 1 || fail "host 1 lost a member while bad starts were refused"
echo "ok"
