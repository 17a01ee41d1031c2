#!/usr/bin/env bash
# Soak: one guest, writing records to its disk and rewriting a RAM
# pattern it checks, migrated live back and forth between two hosts
# SOAK_HOPS times (50).  After every hop: the guest runs on the host it
# reached, without a reboot; every record it had written before the hop
# is on that host's disk, intact; it still writes; its RAM pattern was
# checked whole there and never found changed; the host it left holds
# nothing of it (files, rows, journal, processes).  Each handoffd's
# open file descriptors and resident memory are sampled after the
# second hop and every tenth: descriptors must not grow, memory must
# stay within SOAK_RSS_MIB (24) of its first sample (not checked under
# ASan, whose quarantine holds freed memory by design).
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/handoffd.sh"
guest_hosts 2
hops=${SOAK_HOPS:-50}
rss_slack_kib=$(( ${SOAK_RSS_MIB:-24} * 1024 ))

handoff keygen k.psk >/dev/null 2>&1
start_handoffd 1
start_handoffd 2
make_test_vm "$tmp/vm"
define_guest 1 web1 "$tmp/vm" 128 "records handoff.ram=24"
hcli 1 start web1
wait_for 120 "the guest's records" grep -q "HANDOFF-REC 5" "$tmp/h1/run/web1/serial.log"

daemon_pid () { pgrep -P "$(cat "$tmp/h$1.pid")" | head -n 1; }
fds_of () { ls "/proc/$(daemon_pid "$1")/fd" | wc -l; }
rss_of () { awk '/^VmRSS:/ {print $2}' "/proc/$(daemon_pid "$1")/status"; }
declare -A fd0 rss0
sample ()
{
  local i f r
  for i in 1 2; do
    f=$(fds_of "$i") r=$(rss_of "$i")
    if [ -z "${fd0[$i]:-}" ]; then
      fd0[$i]=$f rss0[$i]=$r
    fi
    printf '  hop %2d: handoffd %d: %3d fds (first %d), %6d KiB resident (first %d)\n' \
      "$1" "$i" "$f" "${fd0[$i]}" "$r" "${rss0[$i]}"
    [ "$f" -le "${fd0[$i]}" ] ||
      fail "handoffd on host $i holds $f file descriptors after hop $1, ${fd0[$i]} after hop 2"
    if [ -z "${SANITIZE:-}" ] && [ "$r" -gt $(( ${rss0[$i]} + rss_slack_kib )) ]; then
      fail "handoffd on host $i grew from ${rss0[$i]} to $r KiB resident by hop $1"
    fi
  done
}

last_tick=0
t0=$(date +%s)
for (( hop = 1; hop <= hops; hop++ )); do
  src=$(( (hop - 1) % 2 + 1 )) dst=$(( hop % 2 + 1 ))
  serial=$tmp/h$src/run/web1/serial.log
  acked=$(serial_last REC "$serial")
  hcli "$src" migrate web1 --to "host$dst" > hop.out 2>&1 ||
    { cat hop.out; fail "hop $hop: host $src -> host $dst"; }
  grep -q "web1 now runs on host$dst" hop.out || { cat hop.out; fail "hop $hop: no success"; }
  serial=$tmp/h$dst/run/web1/serial.log
  # The counter goes on from where it was: no reboot.
  wait_for 30 "hop $hop: ticks on host $dst" grep -aq HANDOFF-TICK "$serial"
  first=$(grep -a HANDOFF-TICK "$serial" | head -n 1 | tr -dc 0-9)
  [ "$first" -ge "$last_tick" ] || fail "hop $hop: the counter went back ($last_tick -> $first)"
  grep -aq HANDOFF-BOOT "$serial" && fail "hop $hop: the guest rebooted"
  # Every record written before the hop, on the disk it runs from; and
  # it writes on.
  wait_for 30 "hop $hop: a new record on host $dst" bash -c \
    "[ \"\$(serial_last REC '$serial')\" -gt ${acked:-0} ]"
  disk=$(hcli "$dst" status web1 --json | jq -r '.def.disks[0].path')
  last_rec=$(check_records "$disk") || fail "hop $hop: a broken record on host $dst"
  [ "${acked:-0}" -le "$last_rec" ] ||
    fail "hop $hop: host $dst's disk ends at record $last_rec; the guest wrote $acked before the hop"
  ram_intact_on "$dst" web1 > /dev/null
  vm_gone_from "$src" web1
  last_tick=$(serial_last TICK "$serial")
  if [ "$hop" = 2 ] || [ $(( hop % 10 )) = 0 ] || [ "$hop" = "$hops" ]; then
    echo "hop $hop of $hops: web1 on host $dst, records intact up to $last_rec, RAM whole ($(( $(date +%s) - t0 )) s)"
    [ "$hop" -lt 2 ] || sample "$hop"
  fi
done
vm_runs_on "$dst" web1
host_idle "$src"
echo "$hops hops in $(( $(date +%s) - t0 )) s; every record and the RAM pattern intact after each; nothing left behind"
echo "$0: PASS"
