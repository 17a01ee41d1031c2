#!/usr/bin/env bash
# handoff --json: every VM command, in success and in failure, prints
# exactly one JSON object on stdout (a failure: {"ok": false, "code": N,
# "error": "..."} with N the exit status), and "ok" agrees with the
# exit status.  Against a real handoffd on a local socket.
source "$(dirname "$0")/functions.sh"
make_tmpdir
cd "$tmp"

handoff keygen k.psk >/dev/null 2>&1
echo '{}' > policy.json
truncate -s 16M d.img
handoffd --name h1 --state-dir "$tmp/st" --control "$tmp/h.sock" \
  --psk k.psk --policy policy.json --peer "h2=tcp://127.0.0.1:1" \
  > d.log 2>&1 &
echo $! > d.pid
cleanup_fn kill_pidfile "$tmp/d.pid"
wait_for_socket h.sock

n=0
# json_case RC CMD...: CMD (handoff --socket ... CMD --json) exits RC,
# prints one JSON object whose "ok" is RC == 0, and on failure its
# "code" is RC and its "error" says why.
json_case ()
{
  local want=$1 rc=0
  shift
  handoff --socket h.sock "$@" --json > out.json 2> err.txt || rc=$?
  [ "$rc" = "$want" ] || { cat out.json err.txt; fail "'$*': exit $rc, expected $want"; }
  [ "$(wc -l < out.json)" = 1 ] || { cat out.json; fail "'$*': not one line of JSON"; }
  jq -e 'type == "object"' out.json > /dev/null || fail "'$*': not a JSON object"
  if [ "$want" = 0 ]; then
    jq -e '.ok == true' out.json > /dev/null || fail "'$*': ok is not true"
  else
    jq -e --argjson rc "$want" '.ok == false and .code == $rc and (.error | length > 0)' \
      out.json > /dev/null || { cat out.json; fail "'$*': not {ok: false, code: $want, error}"; }
  fi
  n=$((n + 1))
}

json_case 0 define vm1 --memory 64 --disk "$tmp/d.img"
jq -e '.name == "vm1"' out.json > /dev/null || fail "define --json names the VM"
json_case 1 define vm1 --memory 64 --disk "$tmp/d.img"
json_case 1 define vm2 --memory 64 --disk "$tmp/nonexist.img"
json_case 1 define vm2 --memory 512K --disk "$tmp/d.img"
json_case 0 list
jq -e '.vms[0].name == "vm1"' out.json > /dev/null || fail "list --json"
json_case 0 status vm1
json_case 8 status nosuch
json_case 1 status
json_case 8 start nosuch
json_case 8 stop nosuch
json_case 0 label vm1 tier=web
jq -e '.objects["label:tier"] == "web"' out.json > /dev/null || fail "label --json"
json_case 1 label vm1 'bad key=x'
json_case 1 label vm1 novalue
json_case 0 event vm1 backup-done '{"n": 1}'
json_case 8 event nosuch backup-done
json_case 1 event vm1 backup-done '{not json'
json_case 8 abort vm1
json_case 8 job vm1
json_case 8 job vm1 --watch
json_case 0 host
jq -e '.host == "h1" and (.host_info | test("^name=h1 .*[^ ]$"))' out.json > /dev/null ||
  fail "host --json: $(cat out.json)"
json_case 7 peers
json_case 1 cluster hosts
jq -e '.error | test("not in a cluster")' out.json > /dev/null ||
  fail "cluster hosts outside a cluster: $(cat out.json)"
json_case 8 migrate nosuch --to h2
json_case 8 migrate vm1 --to auto
jq -e '.error | test("needs fleet mode")' out.json > /dev/null ||
  fail "--to auto outside a cluster: $(cat out.json)"
json_case 1 migrate vm1 --to auto:x
json_case 8 evacuate h1
jq -e '.error | test("needs fleet mode")' out.json > /dev/null ||
  fail "evacuate outside a cluster: $(cat out.json)"
json_case 1 evacuate h2
jq -e '.error | test("this is host h1, not h2")' out.json > /dev/null ||
  fail "evacuate of another host: $(cat out.json)"
json_case 1 evacuate h1 --parallel 0
json_case 1 evacuate h1 --copies 9
json_case 1 evacuate h1 --bandwidth 12Q
json_case 1 evacuate 'h/1'
json_case 8 undrain h1
json_case 1 migrate vm1 --to h2,h2
json_case 8 undefine nosuch
json_case 0 undefine vm1
json_case 7 list --socket "$tmp/nothing.sock"
echo "$n commands with --json: one object each, ok and code agreeing with the exit status"
echo "$0: PASS"
