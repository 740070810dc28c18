#!/usr/bin/env bash
# Build the VM image `flock machine create -d libvirt` boots, offline from Debian packages:
#   OUT_DIR/flock-vm.qcow2    the root filesystem: ext4 on the whole disk (no partitions,
#                             no bootloader), made with `mke2fs -d` (no loop mount)
#   OUT_DIR/flock-vm.vmlinuz  the Debian kernel, booted directly by QEMU
#   OUT_DIR/flock-vm.initrd   a small initrd (virtio + ext4 modules only)
#   OUT_DIR/flock-vm.cmdline  the kernel command line the image expects; the driver adds
#                             the machine's SSH key and host name to it
# Inside: Debian bookworm minbase + systemd, udev, systemd-networkd (DHCP on every
# en*/eth* link), openssh-server, python3 + python3-venv (for Flock's agent, installed
# later over SSH from a wheelhouse), iproute2, sudo. At boot, flock-vm-init.service makes
# the VM's own SSH host key, writes the key passed as flock.ssh_key= (base64) on the kernel
# command line into the flock.ssh_user's authorized_keys, and grows the filesystem to the
# disk's size. The command line turns on the cgroup v1 hierarchy
# (systemd.unified_cgroup_hierarchy=0) that Flock's exec runtime uses for limits.
#
# Usage: deploy/vm-image/build.sh OUT_DIR
# Environment:
#   FLOCK_BUILD_CACHE   cache folder (default /var/tmp/flock-build-cache): the image is
#                       built once per version of this script and then only linked/copied
#   DEBIAN_MIRROR       (default http://deb.debian.org/debian)
#   FLOCK_VM_PACKAGES   extra Debian packages, comma-separated (part of the cache key)
#   FLOCK_VM_SIZE       the filesystem's size (default 2G; --libvirt-disk-size grows it)
#   FLOCK_VM_TMPDIR     where to build (default: /dev/shm when it has room, else the cache)
# Needs root (debootstrap, chroot), debootstrap, mke2fs (e2fsprogs >= 1.43), qemu-img.
set -euo pipefail

SUITE=bookworm
SELF="$(readlink -f "$0")"
CACHE="${FLOCK_BUILD_CACHE:-/var/tmp/flock-build-cache}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SIZE="${FLOCK_VM_SIZE:-2G}"
EXTRA="${FLOCK_VM_PACKAGES:-}"
NAME=flock-vm
PACKAGES=systemd-sysv,udev,dbus,kmod,openssh-server,python3,python3-venv,iproute2,procps
PACKAGES+=,sudo,linux-image-amd64,initramfs-tools,zstd
CMDLINE="root=/dev/vda rw console=ttyS0,115200 quiet loglevel=3 mitigations=off"
CMDLINE+=" systemd.unified_cgroup_hierarchy=0 systemd.show_status=0 random.trust_cpu=on"
# no_timer_check: emulated on a busy host, the IO-APIC timer check fails and the kernel
# panics ("IO-APIC + timer doesn't work!") before it mounts anything.
# i8042.noaux: no PS/2 mouse to probe for seconds; noresume: no swap to wait for.
CMDLINE+=" net.ifnames=0 no_timer_check i8042.noaux noresume"

die() { echo "build.sh: error: $*" >&2; exit 1; }
say() { echo "== $(date +%T) $*" >&2; }

case "${1:-}" in
  -h|--help) sed -n '2,25p' "$SELF" | sed 's/^# \{0,1\}//'; exit 0 ;;
  "") die "usage: build.sh OUT_DIR (the folder to put $NAME.qcow2 and its kernel in)" ;;
esac
(($# == 1)) || die "too many arguments: usage: build.sh OUT_DIR"
OUT="$1"
[[ "$SIZE" =~ ^[0-9]+[MG]$ ]] || die "FLOCK_VM_SIZE '$SIZE' is not a size like 2G or 1536M"
[[ -z "$EXTRA" || "$EXTRA" =~ ^[a-z0-9][a-z0-9.+,-]*$ ]] \
  || die "FLOCK_VM_PACKAGES '$EXTRA' is not a comma-separated list of Debian package names"
[[ $EUID -eq 0 ]] || die "run as root: debootstrap and chroot need it"
for tool in debootstrap mke2fs qemu-img chroot sha256sum flock; do
  command -v "$tool" >/dev/null \
    || die "'$tool' not found: apt-get install debootstrap e2fsprogs qemu-utils util-linux"
done

# --- the cache: one folder per (script, mirror, size, extra packages) -----------------
KEY="$( (cat "$SELF"; echo "$SUITE $MIRROR $SIZE $EXTRA") | sha256sum | cut -c1-16)"
DONE="$CACHE/vm-image/$KEY"
FILES=("$NAME.qcow2" "$NAME.vmlinuz" "$NAME.initrd" "$NAME.cmdline")

publish() {
  # Hard links when OUT_DIR is on the cache's file system (instant), copies otherwise.
  # The driver never writes to these files: it uploads them into a libvirt storage pool.
  mkdir -p "$OUT"
  local f
  for f in "${FILES[@]}"; do
    rm -f "$OUT/$f"
    ln "$DONE/$f" "$OUT/$f" 2>/dev/null || cp --sparse=always "$DONE/$f" "$OUT/$f"
  done
  say "image: $(readlink -f "$OUT")/$NAME.qcow2 (cache key $KEY)"
  echo "$(readlink -f "$OUT")/$NAME.qcow2"
}

mkdir -p "$CACHE/vm-image"
if [[ -f "$DONE/.complete" ]]; then
  publish
  exit 0
fi
# Two builds at once (two test runs) wait for each other instead of building twice.
exec 9>"$CACHE/vm-image/$KEY.lock"
flock 9
if [[ -f "$DONE/.complete" ]]; then
  publish
  exit 0
fi

# The root file system is built in memory when /dev/shm has room and allows device nodes
# and programs (dpkg's many small writes are slow on a shared virtual disk);
# FLOCK_VM_TMPDIR overrides.
TMPBASE="${FLOCK_VM_TMPDIR:-}"
if [[ -z "$TMPBASE" ]]; then
  TMPBASE="$CACHE/vm-image"
  shm_opts="$(findmnt -no OPTIONS /dev/shm 2>/dev/null || true)"
  shm_free="$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 { print $4 }')"
  if [[ -n "$shm_opts" && ! "$shm_opts" =~ (nodev|noexec) ]] \
     && ((${shm_free:-0} > 4 * 1024 * 1024)); then
    TMPBASE=/dev/shm
  fi
fi
WORK="$(mktemp -d "$TMPBASE/flock-vm-work.XXXXXX")"
cleanup() {
  # debootstrap mounts /proc and /sys in the target; never delete through a mount.
  local mounts m
  mounts="$(awk -v w="$WORK/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r)"
  for m in $mounts; do umount -l "$m" 2>/dev/null || true; done
  rm -rf --one-file-system "$WORK" "$DONE.new"
}
trap cleanup EXIT
R="$WORK/root"
mkdir -p "$R/etc/initramfs-tools/conf.d" "$R/etc/initramfs-tools/hooks" "$R/etc/dpkg/dpkg.cfg.d"

# Written before debootstrap, so that the kernel's postinst already makes the small
# initrd: only the modules a virtio disk with ext4 needs, loaded by the initrd's init.
cat >"$R/etc/initramfs-tools/conf.d/flock-vm.conf" <<'EOF'
MODULES=list
COMPRESS=zstd
RESUME=none
EOF
cat >"$R/etc/initramfs-tools/hooks/flock-vm" <<'EOF'
#!/bin/sh
[ "$1" = prereqs ] && exit 0
. /usr/share/initramfs-tools/hook-functions
for m in virtio_pci virtio_blk virtio_net virtio_rng ext4 crc32c_generic; do force_load "$m"; done
EOF
chmod 0755 "$R/etc/initramfs-tools/hooks/flock-vm"
cat >"$R/etc/dpkg/dpkg.cfg.d/01-flock-nodoc" <<'EOF'
path-exclude=/usr/share/doc/*
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
EOF

say "debootstrap --variant=minbase $SUITE from $MIRROR (packages cached in $CACHE/debs)"
mkdir -p "$CACHE/debs"
debootstrap --variant=minbase --include="$PACKAGES${EXTRA:+,$EXTRA}" \
  --cache-dir="$CACHE/debs" "$SUITE" "$R" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
  || { tail -n 30 "$WORK/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
in_root() { env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 chroot "$R" "$@"; }

say "configuring: networkd, sshd, flock-vm-init, cgroup v1"
cat >"$R/etc/fstab" <<'EOF'
/dev/vda  /  ext4  rw,noatime,errors=remount-ro  0  0
EOF
echo "$NAME" >"$R/etc/hostname"
cat >"$R/etc/hosts" <<'EOF'
127.0.0.1 localhost
::1       localhost ip6-localhost ip6-loopback
EOF
cat >"$R/etc/systemd/network/80-flock-dhcp.network" <<'EOF'
[Match]
Name=en* eth*

[Network]
DHCP=ipv4
LinkLocalAddressing=no
IPv6AcceptRA=no

[DHCPv4]
# The MAC as client id: libvirt's dnsmasq hands a restarted VM the same lease.
ClientIdentifier=mac
UseDomains=yes
EOF
mkdir -p "$R/etc/ssh/sshd_config.d"
cat >"$R/etc/ssh/sshd_config.d/flock-vm.conf" <<'EOF'
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
GSSAPIAuthentication no
# One host key, made at first boot: an RSA key takes most of a minute under emulation.
HostKey /etc/ssh/ssh_host_ed25519_key
EOF
cat >"$R/usr/local/sbin/flock-vm-init" <<'EOF'
#!/bin/sh
# Runs once per boot before sshd: host keys, the machine's SSH key, the disk's size.
set -u
arg() { tr ' ' '\n' </proc/cmdline | sed -n "s/^$1=//p" | tail -n 1; }
[ -s /etc/ssh/ssh_host_ed25519_key ] \
  || ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key
user="$(arg flock.ssh_user)"
user="${user:-root}"
key="$(arg flock.ssh_key)"
if [ -n "$key" ]; then
  if ! id "$user" >/dev/null 2>&1; then
    useradd -m -s /bin/bash "$user"
    echo "$user ALL=(ALL) NOPASSWD:ALL" >"/etc/sudoers.d/90-flock-$user"
    chmod 0440 "/etc/sudoers.d/90-flock-$user"
  fi
  home="$(getent passwd "$user" | cut -d: -f6)"
  install -d -m 0700 -o "$user" -g "$(id -g "$user")" "$home/.ssh"
  echo "$key" | base64 -d >"$home/.ssh/authorized_keys.new"
  echo >>"$home/.ssh/authorized_keys.new"
  chown "$user:$(id -g "$user")" "$home/.ssh/authorized_keys.new"
  chmod 0600 "$home/.ssh/authorized_keys.new"
  mv -f "$home/.ssh/authorized_keys.new" "$home/.ssh/authorized_keys"
fi
host="$(cat /proc/sys/kernel/hostname)"
grep -q "[[:space:]]$host\$" /etc/hosts || echo "127.0.1.1 $host" >>/etc/hosts
# The overlay disk may be bigger than the image's file system (--libvirt-disk-size).
resize2fs /dev/vda >/dev/null 2>&1 || true
exit 0
EOF
chmod 0755 "$R/usr/local/sbin/flock-vm-init"
cat >"$R/etc/systemd/system/flock-vm-init.service" <<'EOF'
[Unit]
Description=Flock VM: SSH host key, authorized key, file system size
DefaultDependencies=no
After=local-fs.target systemd-remount-fs.service
Before=ssh.socket ssh.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/flock-vm-init
RemainAfterExit=yes

[Install]
WantedBy=sockets.target
EOF
# sshd by socket activation: port 22 answers as soon as systemd listens (one sshd per
# connection, as a forking sshd would re-exec anyway), instead of after sshd's own start.
in_root systemctl disable ssh.service >/dev/null 2>&1 || true
in_root systemctl enable flock-vm-init.service systemd-networkd.service ssh.socket \
  >/dev/null 2>&1
# Nothing in the VM waits for "network online"; timers, fsck and modules nothing uses
# only slow a TCG boot (every unit costs seconds of emulated CPU).
in_root systemctl mask systemd-networkd-wait-online.service apt-daily.timer \
  apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
  systemd-timesyncd.service getty@tty1.service modprobe@drm.service \
  modprobe@efi_pstore.service modprobe@dm_mod.service modprobe@fuse.service \
  modprobe@loop.service modprobe@configfs.service sys-kernel-config.mount \
  sys-kernel-debug.mount sys-kernel-tracing.mount dev-hugepages.mount \
  systemd-binfmt.service proc-sys-fs-binfmt_misc.automount systemd-pstore.service \
  systemd-network-generator.service >/dev/null 2>&1 || true
in_root systemctl set-default multi-user.target >/dev/null 2>&1
mkdir -p "$R/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\nRuntimeMaxUse=32M\n' \
  >"$R/etc/systemd/journald.conf.d/flock-vm.conf"
# Every VM makes its own host keys at first boot; no machine-id shared between VMs.
rm -f "$R"/etc/ssh/ssh_host_*
: >"$R/etc/machine-id"
rm -f "$R/var/lib/dbus/machine-id"

say "kernel and initrd, pruning modules a VM never loads"
KVER="$(basename "$(ls -d "$R"/lib/modules/*)")"
NEW="$DONE.new"   # the result, on the cache's file system, renamed into place when whole
rm -rf "$NEW"
mkdir -p "$NEW"
cp "$R/boot/vmlinuz-$KVER" "$NEW/$NAME.vmlinuz"
cp "$R/boot/initrd.img-$KVER" "$NEW/$NAME.initrd"
rm -f "$R"/boot/vmlinuz-* "$R"/boot/initrd.img-* "$R"/boot/System.map-*
mods="$R/lib/modules/$KVER/kernel"
for d in "$mods"/drivers/*; do
  case "$(basename "$d")" in
    virtio|block|char|net|md|vhost|acpi|input) ;;   # acpi+input: the power button
    *) rm -rf "$d" ;;
  esac
done
# floppy: udev would load it for the PC's floppy controller and probe a drive for seconds.
rm -rf "$mods"/sound "$mods"/drivers/net/{wireless,ethernet,usb,can,wwan,ieee802154,hamradio} \
  "$mods"/net/{wireless,mac80211,bluetooth} "$mods"/drivers/block/floppy.ko \
  "$mods"/drivers/input/{joystick,tablet,touchscreen,mouse} "$mods"/arch/x86/kvm
in_root depmod -a "$KVER"

rm -rf "$R"/usr/share/{doc,man,info,lintian}/* "$R"/var/lib/apt/lists/* \
  "$R"/var/cache/apt/*.bin "$R"/var/cache/apt/archives/*.deb "$R"/var/log/*.log \
  "$R"/var/cache/debconf/*-old "$R"/dev/* "$R"/tmp/* "$R"/debootstrap
find "$R/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +

say "root file system: mke2fs -d into a $SIZE ext4, then qcow2"
raw="$WORK/root.raw"
truncate -s "$SIZE" "$raw"
mke2fs -q -F -t ext4 -L flock-root -m 0 -d "$R" "$raw" \
  || die "mke2fs -d failed (needs e2fsprogs >= 1.43)"
qemu-img convert -f raw -O qcow2 "$raw" "$NEW/$NAME.qcow2"
rm -f "$raw"
echo "$CMDLINE" >"$NEW/$NAME.cmdline"
chmod 0644 "$NEW/$NAME".*
touch "$NEW/.complete"
rm -rf "$DONE"
mv "$NEW" "$DONE"
# Older builds of this script are of no use any more.
find "$CACHE/vm-image" -mindepth 1 -maxdepth 1 -type d ! -name "$KEY" ! -name 'flock-vm-work.*' \
  -exec rm -rf {} +
find "$CACHE/vm-image" -maxdepth 1 -name '*.lock' ! -name "$KEY.lock" -delete
publish
