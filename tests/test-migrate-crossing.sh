#!/usr/bin/env bash
# Migrations crossing each other, again and again: web1 goes host 1 ->
# host 2 while web2 goes host 2 -> host 1, then both come back, for
# CROSSINGS rounds (20 by default).  Each daemon starts nbdkit, relays
# and QEMU for both directions at once on a loaded machine; none of
# them may die with the short-lived process that spawned it, so every
# migration succeeds, and every record each guest wrote is intact.
# Then both VMs migrate the same way at once, there and back: both run
# where they went, records intact, the host they left holds nothing.
# Host 2 runs its VMs on the mirror's nbdkit always (--disk-path nbd),
# host 1 on QEMU's file driver: a VM crosses between the two ways.
# The disks' TLS is AES-GCM (disks_tls_aes).
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/handoffd.sh"
guest_hosts 2
rounds=${CROSSINGS:-20}

handoff keygen k.psk >/dev/null 2>&1
start_handoffd 1
start_handoffd 2 --disk-path nbd
for i in 1 2; do
  make_test_vm "$tmp/vm$i"
  define_guest "$i" "web$i" "$tmp/vm$i" 128 records
  hcli "$i" start "web$i"
done
for i in 1 2; do
  wait_for 120 "web$i" grep -q "HANDOFF-REC 3" "$tmp/h$i/run/web$i/serial.log"
done
# Host 2's nbdkit under web2 keeps its TLS on AES-GCM.
disks_tls_aes 2 web2

# where VM: the host web1/web2 runs on now.
declare -A on=([web1]=1 [web2]=2)
for (( r=1; r<=rounds; r++ )); do
  pids=()
  for vm in web1 web2; do
    from=${on[$vm]} to=$((3 - ${on[$vm]}))
    hcli "$from" migrate "$vm" --to "host$to" --max-downtime 500 \
      > "r$r-$vm.out" 2>&1 &
    pids+=($!)
  done
  for k in 0 1; do
    vm=web$((k + 1))
    if ! wait "${pids[$k]}"; then
      cat "r$r-$vm.out"
      fail "round $r: $vm from host ${on[$vm]} failed"
    fi
    on[$vm]=$((3 - ${on[$vm]}))
  done
  for vm in web1 web2; do
    i=${on[$vm]}
    hcli "$i" status "$vm" | grep -q "QEMU: running" ||
      fail "round $r: $vm does not run on host $i"
  done
  echo "round $r: web1 on host ${on[web1]}, web2 on host ${on[web2]}: $(grep -h '^downtime' r$r-*.out | tr '\n' ' ')"
done
for vm in web1 web2; do
  i=${on[$vm]}
  serial=$tmp/h$i/run/$vm/serial.log
  acked=$(serial_last REC "$serial")
  last_rec=$(check_records "$(hcli "$i" status "$vm" --json | jq -r '.def.disks[0].path')") ||
    fail "$vm's records"
  [ "${acked:-0}" -le "$last_rec" ] ||
    fail "$vm's disk ends at record $last_rec, the guest wrote $acked"
  echo "$vm: records intact up to $last_rec"
  # Each host runs it its own way, whichever way it came in.
  if [ "$i" = 1 ]; then
    disks_on_files 1 "$vm"
  else
    hcli 2 status "$vm" --json |
      jq -e '.block_nodes | any(.[]; .node == "file0" and .driver == "nbd")' >/dev/null ||
      fail "$vm does not run on the mirror's nbdkit on host 2 (--disk-path nbd)"
  fi
done
# Nothing of a VM stays on a host it left.
for vm in web1 web2; do
  other=$((3 - ${on[$vm]}))
  [ ! -e "$tmp/h$other/run/$vm" ] || fail "host $other kept $vm's run directory"
done

# Then the same way at once: both on host 1, both to host 2 together,
# and both back together.
if [ "${on[web2]}" = 2 ]; then
  hcli 2 migrate web2 --to host1 > gather.out 2>&1 || { cat gather.out; fail "web2 to host 1"; }
  on[web2]=1
fi
if [ "${on[web1]}" = 2 ]; then
  hcli 2 migrate web1 --to host1 > gather.out 2>&1 || { cat gather.out; fail "web1 to host 1"; }
  on[web1]=1
fi
for from in 1 2; do
  to=$((3 - from)) pids=()
  declare -A acked=()
  for vm in web1 web2; do
    acked[$vm]=$(serial_last REC "$tmp/h$from/run/$vm/serial.log")
    hcli "$from" migrate "$vm" --to "host$to" > "same-$from-$vm.out" 2>&1 &
    pids+=($!)
  done
  for k in 0 1; do
    vm=web$((k + 1))
    wait "${pids[$k]}" || { cat "same-$from-$vm.out"; fail "$vm, with the other, host $from -> $to"; }
  done
  for vm in web1 web2; do
    vm_runs_on "$to" "$vm"
    last_rec=$(check_records "$(hcli "$to" status "$vm" --json | jq -r '.def.disks[0].path')") ||
      fail "$vm's records on host $to"
    [ "${acked[$vm]:-0}" -le "$last_rec" ] ||
      fail "$vm's disk on host $to ends at record $last_rec, the guest wrote ${acked[$vm]}"
    vm_gone_from "$from" "$vm"
  done
  echo "web1 and web2 together host $from -> host $to: both run there, records intact, host $from holds nothing"
done
echo "$0: PASS"
