#!/bin/sh
# Runs in every interop guest as PID 1 (exec'ed by /sbin/interop-init from the 9p share, so
# editing this file needs no image rebuild). /mnt/host is the guest's share on the host:
#   params        shell variables written by the rig (ROLE, NAME, addresses, NHRP settings,
#                 IPSEC=psk for strongSwan)
#   swanctl.conf  (IPSEC=psk) strongSwan's connections (scripts/interop/swanctl-dmvpn.conf)
#   nhrpd.conf    FRR configuration for nhrpd; zebra.conf likewise (bgpd.conf, ospfd.conf with
#                 rig --bgp, --ospf)
#   cmd/ID.sh     commands from the host; the output goes to out/ID.out, the status to out/ID.rc
#   logs/         FRR's logs; ready (written once FRR runs) or failed (with the reason)
H=/mnt/host
. $H/params
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH HOME=/root TERM=dumb

say() { echo "guest $NAME: $*" >/dev/console; }
die() { say "FAILED: $*"; echo "$*" >$H/failed; sync; echo o >/proc/sysrq-trigger; }

# Commands from the host, one file each, until the rig powers the guest off.
command_loop() {
    cd /root
    while :; do
        for f in $H/cmd/*.sh; do
            [ -e "$f" ] || continue
            id=$(basename "$f" .sh)
            mv "$f" "/tmp/$id.sh"
            timeout "${CMD_TIMEOUT:-120}" sh "/tmp/$id.sh" >"$H/out/$id.tmp" 2>&1 </dev/null
            echo $? >"$H/out/$id.rc.tmp"
            mv "$H/out/$id.tmp" "$H/out/$id.out"
            mv "$H/out/$id.rc.tmp" "$H/out/$id.rc"
        done
        sleep 0.3
    done
}

# ROLE=systemd (rig --systemd-guests): no FRR; systemd becomes PID 1 and runs the command loop
# as a unit of its own, for tests of systemd services (tests/interop/package.py). The root
# image is a snapshot, so the unit written here is gone at the next boot.
if [ "$ROLE" = systemd ]; then
    if [ "${1:-}" = loop ]; then
        say "up: systemd $(systemctl is-system-running 2>/dev/null || true)"
        echo up >$H/ready
        CMD_TIMEOUT=600  # package installs and service starts under TCG; the host times out too
        command_loop
    fi
    cat >/etc/systemd/system/interop-guest.service <<EOF
[Unit]
Description=interop rig: commands from the host through /mnt/host
[Service]
ExecStart=/bin/sh /mnt/host/guest.sh loop
[Install]
WantedBy=multi-user.target
EOF
    mkdir -p /etc/systemd/system/multi-user.target.wants
    ln -sf ../interop-guest.service /etc/systemd/system/multi-user.target.wants/
    [ -x /lib/systemd/systemd ] || die "no systemd in the image"
    exec /lib/systemd/systemd
fi

echo "$NAME" >/proc/sys/kernel/hostname
modprobe virtio_net || die "modprobe virtio_net"
modprobe ip_gre || die "modprobe ip_gre"
sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0

# The NIC can take a moment to appear after the driver loads.
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
ip link set lo up
ip link set eth0 up || die "no eth0"
ip addr add "$NBMA/24" dev eth0
ip tunnel add gre1 mode gre key "$KEY" ttl 64 dev eth0 || die "ip tunnel add gre1"
# The overlay address as a host prefix: with a /24 FRR 8.4's nhrpd logs "is not a host prefix"
# and never registers (the NHS stays "(unspec)"). OVERLAY_PLEN exists only to show that.
ip addr add "$OVERLAY/${OVERLAY_PLEN:-32}" dev gre1
[ -z "${GRE_MTU:-}" ] || ip link set gre1 mtu "$GRE_MTU"
ip link set gre1 up
if [ "$ROLE" = hub ]; then
    sysctl -qw net.ipv4.ip_forward=1
    if [ "$REDIRECT" = 1 ]; then
        # FRR's hub learns of spoke-to-spoke traffic it forwards only through NFLOG
        # (nhrpd `nhrp nflog-group 1`); this rule is the one FRR's documentation gives.
        iptables -A FORWARD -i gre1 -o gre1 -m hashlimit --hashlimit-upto 4/minute \
            --hashlimit-burst 1 --hashlimit-mode srcip,dstip --hashlimit-srcmask 24 \
            --hashlimit-dstmask 24 --hashlimit-name loglimit-0 \
            -j NFLOG --nflog-group 1 --nflog-size 128 || die "iptables NFLOG rule"
    fi
else
    # Until a shortcut exists, the overlay is reached through the NHS (nhrpd installs the
    # NHS's neighbour entry once registered).
    ip route add "$OVERLAY_NET" via "$NHS_OVERLAY" dev gre1 onlink
fi

if [ "${IPSEC:-}" = psk ] || [ "${IPSEC:-}" = cert ]; then
    # strongSwan (charon-systemd, run by hand: no systemd here) with the rig's swanctl.conf:
    # transport-mode ESP for GRE, negotiated by IKEv2 (PSK, or certificates: the share's
    # x509ca/, x509/ and private/ go to /etc/swanctl/). Its log, with the IKE and ESP
    # keys (ike/chd 4, the default of the rig's --ipsec-log), lands in the share for the host (tests/interop/strongswan_guests.py).
    modprobe esp4 || die "modprobe esp4"
    modprobe xfrm_user 2>/dev/null || true
    cat >/etc/strongswan.d/zz-interop.conf <<EOF
charon-systemd {
  # Only the plugins a GRE-in-ESP spoke needs (tests/interop/strongswan.py's list): under TCG
  # on a busy host, loading Debian's full modular set took charon minutes.
  load_modular = no
  load = random nonce openssl pem pkcs1 pkcs8 x509 pubkey revocation constraints curve25519 gcm aes sha1 sha2 hmac kdf kernel-netlink socket-default vici
  journal {
    default = -1
  }
  filelog {
    interop {
      path = $H/logs/charon.log
      time_format = %H:%M:%S
      ike_name = yes
      flush_line = yes
      default = 1
      ike = ${IKE_LOG:-4}
      chd = ${IKE_LOG:-4}
      enc = 1
      cfg = 2
      knl = 2
    }
  }
}
EOF
    cp $H/swanctl.conf /etc/swanctl/swanctl.conf
    for d in x509ca x509 private; do
        if [ -d $H/$d ]; then cp $H/$d/* /etc/swanctl/$d/; fi
    done
    chmod 600 /etc/swanctl/private/* 2>/dev/null || true
    /usr/sbin/charon-systemd >$H/logs/charon.out 2>&1 </dev/null &
    i=0
    # Up to 60 s: under TCG on a busy host charon can take a while to load its plugins.
    while [ ! -S /run/charon.vici ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
    [ -S /run/charon.vici ] || die "charon-systemd did not start (logs/charon.out)"
    swanctl --load-all >$H/logs/swanctl-load.log 2>&1 || die "swanctl --load-all failed"
    # swanctl exits 0 on a swanctl.conf it cannot parse (it loads nothing).
    ! grep -q "invalid config file" $H/logs/swanctl-load.log || die "swanctl.conf invalid"
fi

mkdir -p /run/frr /var/log/frr
chown frr:frr /run/frr /var/log/frr
cp $H/zebra.conf $H/nhrpd.conf /etc/frr/
touch /etc/frr/vtysh.conf
chown frr:frr /etc/frr/*.conf
/usr/lib/frr/zebra -d -f /etc/frr/zebra.conf -A 127.0.0.1 || die "zebra did not start"
/usr/lib/frr/nhrpd -d -f /etc/frr/nhrpd.conf -A 127.0.0.1 || die "nhrpd did not start"
if [ -n "${MCAST_NFLOG:-}" ]; then
    # rig --ospf: multicast leaving gre1 (OSPF hellos to 224.0.0.5) goes to nhrpd through NFLOG
    # (`nhrp multicast-nflog-group`), which sends it to its multicast map (`ip nhrp map
    # multicast NHS-NBMA`); the kernel's own copy, which would go to the multicast address as
    # the NBMA destination, is dropped. FRR's documented rules.
    iptables -A OUTPUT -d 224.0.0.0/24 -o gre1 -j NFLOG --nflog-group "$MCAST_NFLOG" \
        || die "iptables multicast NFLOG rule"
    iptables -A OUTPUT -d 224.0.0.0/24 -o gre1 -j DROP || die "iptables multicast DROP rule"
fi
if [ -n "${LAN:-}" ]; then
    # rig --bgp / --ospf: the spoke's LAN on a dummy interface, announced by bgpd or ospfd.
    modprobe dummy || die "modprobe dummy"
    ip link add lan0 type dummy && ip addr add "$LAN" dev lan0 && ip link set lan0 up \
        || die "lan0"
fi
if [ -f $H/bgpd.conf ]; then
    # Other spokes' LANs (192.168.0.0/16) through the NHS until BGP says better (not with
    # rig --no-lan-route: BGP alone routes them, e.g. with the hub's summary).
    [ "${LAN_ROUTE:-1}" = 0 ] || ip route add 192.168.0.0/16 via "$NHS_OVERLAY" dev gre1 onlink
    cp $H/bgpd.conf /etc/frr/ && chown frr:frr /etc/frr/bgpd.conf
    /usr/lib/frr/bgpd -d -f /etc/frr/bgpd.conf -A 127.0.0.1 || die "bgpd did not start"
fi
if [ -f $H/ospfd.conf ]; then
    # Other spokes' LANs come from OSPF alone (through the hub, point-to-multipoint).
    cp $H/ospfd.conf /etc/frr/ && chown frr:frr /etc/frr/ospfd.conf
    /usr/lib/frr/ospfd -d -f /etc/frr/ospfd.conf -A 127.0.0.1 || die "ospfd did not start"
fi
say "up: eth0 $NBMA, gre1 $OVERLAY/${OVERLAY_PLEN:-32} key $KEY, role $ROLE"
echo up >$H/ready

command_loop
