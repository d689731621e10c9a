#!/bin/bash
# Builds the QEMU guest of scripts/ble-vm/run.sh: Debian's stock kernel with
# hci_vhci, L2CAP and BlueZ (bluetoothd), btvirt for two virtual LE
# controllers. The guest mounts the host's / read-only as its root, so it
# runs binaries built here. Needs root (apt-get) and Debian packages only.
# (From ../shared/tools/ble-vm/make-blevm.sh.)
set -euo pipefail
W=${W:-/tmp/blevm}
KVER=${KVER:-}     # e.g. 6.1.0-56-amd64; default: whatever linux-image-amd64 depends on
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  qemu-system-x86 busybox-static bluez bluez-test-tools dbus kmod cpio >/dev/null
[ -n "$KVER" ] || KVER=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/{sub("linux-image-","",$2); print $2; exit}')
mkdir -p $W && cd $W
[ -f vmlinuz ] || { apt-get download linux-image-$KVER >/dev/null; dpkg-deb -x linux-image-$KVER*.deb root; cp root/boot/vmlinuz-$KVER vmlinuz; depmod -b $W/root $KVER; }
K=root/lib/modules/$KVER
rm -rf initrd; mkdir -p initrd/{bin,dev,proc,sys,newroot}
cp /bin/busybox initrd/bin/
MODS="virtio_pci 9pnet_virtio 9p bluetooth hci_vhci af_alg algif_hash algif_skcipher ecb cmac"
for m in $MODS; do
  for p in $(grep -E "/$m.ko:" $K/modules.dep | tr -d ':'); do
    mkdir -p initrd/lib/modules/$KVER/$(dirname $p); cp -n $K/$p initrd/lib/modules/$KVER/$p
  done
done
cp $K/modules.dep initrd/lib/modules/$KVER/
sed "s/__MODS__/$MODS/" > initrd/init <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs dev /dev
for m in __MODS__; do modprobe $m || echo "modprobe $m failed"; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 hostroot /newroot || { echo "9p mount failed"; poweroff -f; }
mount -t proc proc /newroot/proc; mount -t sysfs sysfs /newroot/sys; mount -t devtmpfs dev /newroot/dev
mount -t tmpfs tmpfs /newroot/run; mount -t tmpfs tmpfs /newroot/var/lib/bluetooth; mount -t tmpfs tmpfs /newroot/tmp
mkdir -p /newroot/tmp/share /newroot/dev/pts; mount -t devpts devpts /newroot/dev/pts
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 share /newroot/tmp/share
chroot /newroot /bin/bash /tmp/share/vm-run.sh
echo "GUEST: vm-run.sh exited rc=$?"
sync; poweroff -f
INIT
chmod +x initrd/init
(cd initrd && find . | cpio -o -H newc 2>/dev/null | gzip -1 > ../initrd.gz)
echo "built $W/vmlinuz $W/initrd.gz"
