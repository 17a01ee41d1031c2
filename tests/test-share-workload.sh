#!/usr/bin/env bash
# A VM directory of about 2 GiB (a large sparse disk image, a few
# hundred small files, nested directories, symlinks, hard links) is
# shared from host 1 (through the FUSE mount) to host 2 while a
# workload runs through the mount: fio with verification writing into
# the large file, appends, truncates, renames (of files being copied
# too), an unlinked open file, mkdir/rmdir, 'tar x', and a loop of git
# commits.  After commit the trees are equal: diff -r, per-file
# checksums and metadata, git fsck in the copy.
source "$(dirname "$0")/functions.sh"
requires_fuse
requires fio --version
requires git --version
requires_netns
make_tmpdir
cd "$tmp"
make_hosts 2

handoff keygen k.psk 2>/dev/null
mkdir -p src mnt
# The large sparse image: 1.5 GiB with 384 MiB of data in pieces.
truncate -s 1536M src/disk.img
for i in 0 3 6 9 12 15; do
  dd if=/dev/urandom of=src/disk.img bs=1M count=64 seek=$((i * 96)) \
     conv=notrunc status=none
done
head -c 200M /dev/urandom > src/state.bin
mkdir -p src/conf/nested/deeper src/logs
for i in $(seq 300); do
  head -c $(( (i * 37) % 9000 + 1 )) /dev/urandom > "src/conf/nested/f$i"
done
for i in $(seq 20); do echo "log line $i" > "src/logs/l$i"; done
ln -s conf/nested/f1 src/link-to-f1
ln -s ../../../etc/hostname src/conf/dangling
ln src/conf/nested/f2 src/conf/hardlink-f2
chmod 600 src/conf/nested/f3
# An archive to unpack during the copy.
mkdir arch && for i in $(seq 50); do head -c 3000 /dev/urandom > "arch/a$i"; done
tar -C arch -cf files.tar . && rm -rf arch

on_host 1 handoff-share mount "$tmp/src" "$tmp/mnt" --control "$tmp/m.ctl" \
  > mount.log 2>&1 &
echo $! > mount.pid
cleanup_fn kill_pidfile "$tmp/mount.pid"
cleanup_fn unmount_fuse_on 1 "$tmp/mnt"
on_host 2 handoff-share serve --listen "tcp://${HOST_IP[2]}:7500" \
  --root "$tmp/dst" --psk k.psk --control "$tmp/r.ctl" > serve.log 2>&1 &
echo $! > serve.pid
cleanup_fn kill_pidfile "$tmp/serve.pid"
wait_for_socket "$tmp/m.ctl"
wait_for_socket "$tmp/r.ctl"
on_host 1 mountpoint -q "$tmp/mnt" || fail "not mounted"

# Slow the link so the workload overlaps the copy.
host_rate 1 800mbit
start=$(date +%s.%N)
on_host 1 handoff share start "$tmp/m.ctl" --to "tcp://${HOST_IP[2]}:7500" --psk k.psk

on_host 1 bash -c "
  set -e
  cd '$tmp/mnt'
  fio --name=v --filename=disk.img --rw=randwrite --bs=4k --size=256m \
      --offset=1g --verify=crc32c --do_verify=1 --iodepth=1 --runtime=6 \
      --time_based --verify_fatal=1 --verify_state_save=0 --output='$tmp/fio.out' > '$tmp/fio.log' 2>&1 &
  fio_pid=\$!
  for i in \$(seq 40); do echo \"entry \$i\" >> logs/l1; done
  truncate -s 1000 conf/nested/f10
  truncate -s 20000 conf/nested/f11
  mv state.bin state-renamed.bin          # renamed while being copied
  mv conf/nested conf/moved
  exec 7>> logs/open-then-unlinked
  echo before >&7
  rm logs/open-then-unlinked
  echo after >&7
  exec 7>&-
  mkdir -p tmpdir/a/b && rmdir tmpdir/a/b tmpdir/a tmpdir
  fallocate -p -o 8M -l 1M disk.img        # a discard in the first piece
  fallocate -z -o 200M -l 64k disk.img     # zeroes in the second
  fallocate -l 3M logs/preallocated
  ! fallocate -c -o 0 -l 4096 logs/preallocated 2>/dev/null  # moves data
  mkdir unpacked && tar -C unpacked -xf '$tmp/files.tar'
  mkdir repo && cd repo && git init -q . && git config user.email t@e &&
    git config user.name t
  for i in \$(seq 15); do
    echo \"change \$i\" >> file\$((i % 4)); git add -A; git commit -qm \"c\$i\"
  done
  cd ..
  wait \$fio_pid
"
grep -q "err= 0" fio.out || { cat fio.out; fail "fio verification failed"; }
on_host 1 handoff share status "$tmp/m.ctl"
on_host 1 handoff share commit "$tmp/m.ctl"
secs=$(echo "$(date +%s.%N) - $start" | bc)
on_host 1 handoff share status "$tmp/m.ctl" --json > status.json
echo "shared $(jq .bytes status.json) bytes in ${secs}s, $(jq .mirrored_writes status.json) writes mirrored"
wait_for 10 "the receiver to finish" bash -c "! kill -0 \$(cat '$tmp/serve.pid') 2>/dev/null"
grep -q "share committed" serve.log || { cat serve.log; fail "not committed"; }

# The trees are equal: content, and metadata of every entry.
diff -r --no-dereference src dst || fail "diff -r"
meta () { (cd "$1" && find . -printf '%P %y %s %m %U %G %T@ %l\n' | sort); }
diff <(meta src) <(meta dst) || fail "metadata differs"
sums () { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }
diff <(sums src) <(sums dst) || fail "checksums differ"
[ "$(stat -c %i dst/conf/hardlink-f2)" = "$(stat -c %i dst/conf/moved/f2)" ] ||
  fail "the hard link was not kept"
git -C dst/repo fsck --strict || fail "git fsck in the copy"
[ "$(git -C dst/repo rev-list --count HEAD)" = 15 ] || fail "git history"
alloc=$(du -B1 dst/disk.img | cut -f1)
[ "$alloc" -lt $((700 << 20)) ] || fail "the sparse image was filled in ($alloc bytes)"
[ ! -e dst.handoff-partial ] || fail "partial directory left"
echo "$0: PASS"
