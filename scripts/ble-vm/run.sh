#!/usr/bin/env bash
# Runs the BLE plugin on a real Linux Bluetooth stack: builds the tests and
# the skein binary here, boots a QEMU guest (Debian's kernel, BlueZ, two
# virtual LE controllers from btvirt; see make-image.sh) that runs them
# (guest.sh), and prints what passed and the figures measured.
#
#   scripts/ble-vm/run.sh            # from the repository; ~5-7 min
#   SKEIN_BLEVM_ONLY=TestBlueZGATTFallback scripts/ble-vm/run.sh   # one test
#
# The guest image is built on first use into $SKEIN_BLEVM_DIR (default
# /tmp/skein-blevm), which needs root (apt-get). Where the image cannot be
# built or QEMU cannot boot it (twice), the script prints one line
# starting "ble-vm: SKIP" and exits 0. A failed check exits 1.
set -uo pipefail
cd "$(dirname "$0")/../.."
W=${SKEIN_BLEVM_DIR:-/tmp/skein-blevm}
skip() { echo "ble-vm: SKIP: $*"; exit 0; }
export PATH="$PATH:/usr/local/go/bin"

need_image=""
[ -f "$W/vmlinuz" ] && [ -f "$W/initrd.gz" ] || need_image=yes
command -v qemu-system-x86_64 >/dev/null 2>&1 || need_image=yes
command -v btvirt >/dev/null 2>&1 || need_image=yes
if [ -n "$need_image" ]; then
  [ "$(id -u)" = 0 ] || skip "no guest image in $W (or no qemu-system-x86_64/btvirt) and not root to build it: run as root once"
  mkdir -p "$W"
  echo "ble-vm: building the guest image in $W (apt-get, ~1 min)"
  W="$W" bash scripts/ble-vm/make-image.sh > "$W/make.log" 2>&1 \
    || skip "building the guest image failed: $(tail -1 "$W/make.log")"
fi
[ -e /dev/kvm ] || true # TCG is used either way: KVM hangs nested guests here

S=$(mktemp -d /tmp/skein-blevm-share.XXXXXX)
# Keep the logs (out/, console.log), not the 150 MB of binaries.
trap 'rm -f "$S/ble.test" "$S/skein"' EXIT
echo "ble-vm: building the tests and skein into $S"
go test -c -o "$S/ble.test" ./plugins/ble || { echo "ble-vm: FAIL: building the plugin tests"; exit 1; }
go build -o "$S/skein" ./cmd/node || { echo "ble-vm: FAIL: building skein"; exit 1; }
cp scripts/ble-vm/guest.sh "$S/vm-run.sh"
# SKEIN_BLEVM_ONLY="TestBlueZGATTFallback ...": run these plugin tests
# alone (no skein nodes), to iterate.
[ -n "${SKEIN_BLEVM_ONLY:-}" ] && echo "$SKEIN_BLEVM_ONLY" > "$S/only"

boot() {
  timeout "${VM_TIMEOUT:-900}" qemu-system-x86_64 -accel tcg,thread=multi -cpu max -m 3072 -smp 2 \
    -nographic -no-reboot -kernel "$W/vmlinuz" -initrd "$W/initrd.gz" \
    -append "console=ttyS0 panic=-1 loglevel=4 cryptomgr.notests" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -virtfs "local,path=$S,mount_tag=share,security_model=none" > "$S/console.log" 2>&1
}
began=$(date +%s)
for attempt in 1 2; do
  rm -rf "$S/out"
  echo "ble-vm: booting the guest (attempt $attempt; load average $(cut -d' ' -f1-3 /proc/loadavg))"
  boot
  [ -f "$S/out/booted" ] && break
done
[ -f "$S/out/booted" ] || skip "QEMU could not boot the guest twice ($(tail -c 300 "$S/console.log" | tr -d '\r' | tail -1)); see $S/console.log"
[ -f "$S/out/done" ] || echo "ble-vm: the guest stopped before the end (timeout?); see $S/out/guest.log"

echo "ble-vm: results ($(( $(date +%s) - began )) s in the guest, host load average $(cut -d' ' -f1-3 /proc/loadavg)):"
sed 's/^/  /' "$S/out/summary.txt" 2>/dev/null
sed 's/^/  /' "$S/out/figures.txt" 2>/dev/null
echo "  logs: $S/out"
if [ ! -f "$S/out/done" ] || grep -q '^FAIL' "$S/out/summary.txt" 2>/dev/null || ! [ -s "$S/out/summary.txt" ]; then
  echo "ble-vm: FAIL"
  exit 1
fi
echo "ble-vm: ok"
