#!/usr/bin/python3
"""Interop: Phase 3 with a summary route (issue 12 parts 3 and 6): real FRR 8.4 spokes in qemu
guests run BGP with the hub's FRR, which gives them only a summary of every spoke's LAN; spoke
to spoke traffic enters the hub, the hub sends a Traffic Indication, the spoke resolves, the hub
forwards the Resolution Request along its FIB (the BGP route from FPM) to the spoke that owns
the longer prefix, and a shortcut forms.

tests/interop/hub_frr.py's rig (our hub on the bridge, GRE key 42, spokes with `ip nhrp
shortcut`) with `rig --bgp 65000 --no-lan-route`: each spokeN has a LAN 192.168.N.0/24 (dummy
lan0, 192.168.N.1) that its bgpd announces to the NHS's overlay address 10.255.0.1, and no
static route to the other LANs (what reaches them is BGP's). The hub gets `routing.interfaces`
(dmvpn-tun0) and `routing.fpm`; scripts/frr-hub starts zebra (FPM on) and bgpd in the rig's
namespace with config/examples/frr/bgpd-phase3.conf turned to the rig's addresses (listen
range 10.255.0.0/24, router-id 10.255.0.1, no hub LAN, the summary `aggregate-address
192.168.0.0/16` and route-map SUMMARY-ONLY keeping the /24s from the spokes).

Asserts:
  - every spoke registers and its BGP session with the hub is Established;
  - `dmvpnctl show ip route --json` lists every spoke's LAN code B, source fpm, next hop the
    spoke's overlay address resolved to its NBMA address;
  - every spoke has the summary 192.168.0.0/16 from BGP, next hop 10.255.0.1, selected and in
    its kernel, and not the other spoke's /24 (BGP table, zebra, kernel);
  - spoke2's LAN pings spoke3's (192.168.2.1 -> 192.168.3.1): the first echoes cross the hub
    (capture: GRE spoke2 -> hub -> spoke3 with the LAN addresses inside);
  - the hub sends a Traffic Indication to spoke2 (the sender, found through the BGP route of
    the packet's source 192.168.2.1) and one to spoke3 for the replies; the hub forwards the
    Resolution Requests to the owner of the longer prefix (capture: NHRP type 1 hub -> spoke);
    each owner's Resolution Reply reaches the requester, through the hub (which hands on each
    one it gets) or straight (capture: type 2; the hub's NHRP counters);
  - spoke2's nhrpd holds a shortcut 192.168.3.0/24 (`show ip nhrp shortcut`), its cache
    10.255.0.3 at 198.51.100.3, its kernel routes 192.168.3.0/24 via 10.255.0.3 on gre1 (and
    spoke3 the same towards 192.168.2.0/24);
  - afterwards the traffic goes spoke to spoke: an echo sent with TTL 1 is answered (no router
    between), the replies arrive with TTL 64 (not decremented by the hub), a burst of 20 echoes
    moves the hub's workers' counters by less than half of what it would through the hub, and
    the capture shows GRE 198.51.100.2 <-> 198.51.100.3 with the LAN addresses inside.
On failure: hub_frr's diagnostics plus FRR's logs (the hub's and the spokes' bgpd), the hub's
bgpd table and zebra's routes.
Needs root, qemu (exit 77 without), build/dmvpn-hub, Debian's frr. Own namespace and run
directory (dmvpn-hubp3, /run/dmvpn-hubp3). About 3-5 minutes with the image built.
"""

import json
import os
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("DMVPN_HUBFRR_NS", "dmvpn-hubp3")
os.environ.setdefault("DMVPN_HUBFRR_RUN", "/run/dmvpn-hubp3")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import hub_frr as hf  # noqa: E402
import hub_routing as hr  # noqa: E402

check, step, vtysh, guest_sh, wait_for = hf.check, hf.step, hf.vtysh, hf.guest_sh, hf.wait_for
fib, lan = hr.fib, hr.lan
HUB_NBMA, HUB_OVL = hf.HUB_NBMA, hf.HUB_OVL
ASN = 65000
SUMMARY = "192.168.0.0/16"
BURST = 20


def host(spoke):
    """spokeN's LAN address 192.168.N.1."""
    return lan(spoke).replace(".0/24", ".1")


def setup(work):
    return hr.hub_config(work), ["--bgp", str(ASN), "--no-lan-route"]


def checks(hub, cap):
    # bgpd-phase3.conf with the rig's overlay (10.255.0.0/24, hub 10.255.0.1), no hub LAN, and
    # the rig's spoke LANs (192.168.N.0/24) summarised instead of the example's 172.16.0.0/12.
    conf = hr.bgpd_for_rig("bgpd-phase3.conf", cap.parent, (
        ("aggregate-address 172.16.0.0/12", f"aggregate-address {SUMMARY}"),
        ("permit 172.16.0.0/12 ge 13", f"permit {SUMMARY} ge 17")))
    hr.with_hub_frr(hub, "bgpd", conf, lambda: phase3_checks(hub, cap),
                    on_failure=("show bgp ipv4 unicast", "show ip route"))


def spoke_routes(spoke, other):
    """What spoke has for the LANs: (BGP table prefixes, zebra's summary entry, the kernel's
    routes under 192.168.0.0/16)."""
    try:
        bgp = json.loads(vtysh(spoke, "show bgp ipv4 unicast json")).get("routes", {})
    except ValueError:
        bgp = {}
    try:
        summary = json.loads(vtysh(spoke, f"show ip route {SUMMARY} json")).get(SUMMARY, [])
    except ValueError:
        summary = []
    _, kernel = guest_sh(spoke, "ip -4 route show root 192.168.0.0/16")
    return bgp, summary, kernel


def summary_only(spoke, other):
    """spoke has the summary from BGP via the hub, selected and in its kernel, and not other's
    LAN; checked after waiting for it."""
    def ok():
        bgp, summary, kernel = spoke_routes(spoke, other)
        good = (SUMMARY in bgp and lan(other) not in bgp and any(
            r.get("protocol") == "bgp" and r.get("selected") and r.get("installed") and
            any(n.get("ip") == HUB_OVL for n in r.get("nexthops", [])) for r in summary) and
            re.search(rf"^{re.escape(SUMMARY)} (nhid \d+ )?via {HUB_OVL} dev gre1 proto bgp",
                      kernel, re.M))
        return (bgp, summary, kernel) if good else None
    t = time.time()
    got = wait_for(ok, 60, 2)
    bgp, summary, kernel = got or spoke_routes(spoke, other)
    step(f"{spoke}: summary {time.time() - t:.0f} s")
    print(f"{spoke}# show ip route {SUMMARY}\n" + vtysh(spoke, f"show ip route {SUMMARY}") +
          f"{spoke}$ ip route (LANs)\n{kernel}", flush=True)
    check(got is not None, f"{spoke}: {SUMMARY} from BGP via {HUB_OVL}, selected, in the kernel "
                           f"(proto bgp)", json.dumps(summary) + "\n" + kernel)
    check(lan(other) not in bgp and lan(other) not in kernel,
          f"{spoke}: {other}'s {lan(other)} is not in its BGP table nor its kernel "
          f"(the hub sends only the summary)", json.dumps(sorted(bgp)) + "\n" + kernel)
    check(sorted(bgp) == sorted([SUMMARY, lan(spoke)]),
          f"{spoke}: its BGP table holds its own LAN and the summary, nothing else",
          json.dumps(sorted(bgp)))


def shortcut_state(src, dst):
    sc = vtysh(src, "show ip nhrp shortcut")
    cache = vtysh(src, "show ip nhrp cache")
    _, kr = guest_sh(src, f"ip -4 route show {lan(dst)}; "
                          f"ip -4 route get {host(dst)} from {host(src)}")
    return sc, cache, kr


def lan_shortcut(src, dst, seconds=90):
    """src's LAN pings dst's (keeping the Traffic Indications coming) until src's nhrpd holds a
    shortcut for dst's LAN, its cache dst's overlay address at dst's NBMA address, and its
    kernel routes dst's LAN through dst's overlay address on gre1. Checked."""
    d_nbma, d_ovl = hf.SPOKES[dst]

    def up():
        guest_sh(src, f"ping -n -c 2 -i 0.5 -W 2 -I {host(src)} {host(dst)}")
        sc, cache, kr = shortcut_state(src, dst)
        ok = (any(lan(dst) in l.split() for l in sc.splitlines()) and
              any(d_ovl in l.split() and d_nbma in l.split() for l in cache.splitlines()) and
              re.search(rf"^{re.escape(lan(dst))} (nhid \d+ )?via {d_ovl} dev gre1", kr, re.M))
        return ok
    t = time.time()
    got = wait_for(up, seconds, 2)
    step(f"{src}: shortcut to {lan(dst)} {time.time() - t:.0f} s")
    sc, cache, kr = shortcut_state(src, dst)
    print(f"{src}# show ip nhrp shortcut\n{sc}\n{src}# show ip nhrp cache\n{cache}\n"
          f"{src}$ ip route show {lan(dst)}; ip route get {host(dst)}\n{kr}", flush=True)
    return check(bool(got), f"{src}: shortcut {lan(dst)} via {d_ovl} (NBMA {d_nbma}) in nhrpd "
                            f"and in the kernel (gre1)", sc + cache + kr)


def worker_packets(hub):
    w = hub.ctl_json("show", "stats")["workers"]
    return sum(x["rx_packets"] for x in w), sum(x["tx_packets"] for x in w)


def phase3_checks(hub, cap):
    # The spokes' LANs in the hub's FIB (full detail: the hub must know who owns what).
    if not hr.bgp_lans_in_fib(hub):
        return
    # zebra installs bgpd's aggregate as a blackhole: the hub drops what no spoke owns.
    r = wait_for(lambda: fib(hub).get(SUMMARY), 30, 1)
    rc, text = hub.ctl("show", "ip", "route", SUMMARY)
    print(f"dmvpnctl show ip route {SUMMARY}\n{text}", flush=True)
    print(hr.hub_vtysh("show bgp ipv4 unicast"), flush=True)
    check(r is not None and r["code"] == "B" and r["source"] == "fpm" and
          r["state"] == "blackhole" and "Null0" in text,
          f"hub: {SUMMARY} (bgpd's aggregate) in the FIB from fpm as a blackhole, Null0",
          json.dumps(r) + "\n" + text)

    # The spokes see only the summary through the hub.
    for a, b in (("spoke2", "spoke3"), ("spoke3", "spoke2")):
        summary_only(a, b)
    if hf.failures:
        return

    traffic0 = hub.ctl_json("show", "nhrp", "traffic")[0]

    # LAN to LAN: into the hub first (the summary), then a Traffic Indication, a resolution
    # forwarded along the hub's BGP route, a shortcut.
    rc, out = guest_sh("spoke2", f"ping -n -c 6 -i 0.5 -W 3 -I {host('spoke2')} {host('spoke3')}")
    print(f"spoke2$ ping -I {host('spoke2')} {host('spoke3')}\n{out}", flush=True)
    check(rc == 0, f"spoke2's LAN {host('spoke2')} pings spoke3's LAN {host('spoke3')} "
                   f"(through the summary)", out)
    ok2 = lan_shortcut("spoke2", "spoke3")
    ok3 = lan_shortcut("spoke3", "spoke2")
    print("spoke3# show ip nhrp cache\n" + vtysh("spoke3", "show ip nhrp cache"), flush=True)

    traffic = hub.ctl_json("show", "nhrp", "traffic")[0]
    print("dmvpnctl show nhrp traffic --json\n" + json.dumps(traffic), flush=True)

    def delta(direction, kind):
        return traffic[direction].get(kind, 0) - traffic0[direction].get(kind, 0)
    check(delta("sent", "traffic_indication") >= 2,
          f"the hub sent Traffic Indications (+{delta('sent', 'traffic_indication')}: one per "
          f"direction at least)", json.dumps(traffic))
    check(delta("received", "resolution_request") >= 2 and
          delta("sent", "resolution_request") >= 2,
          f"the hub received Resolution Requests (+{delta('received', 'resolution_request')}) "
          f"and forwarded them (+{delta('sent', 'resolution_request')})", json.dumps(traffic))
    check(delta("received", "resolution_reply") == delta("sent", "resolution_reply"),
          f"every Resolution Reply the hub got it handed on to its requester (in +"
          f"{delta('received', 'resolution_reply')}, out +{delta('sent', 'resolution_reply')})",
          json.dumps(traffic))

    # Spoke to spoke now. TTL 1: only an echo that meets no router on its way is answered;
    # replies at TTL 64: the way back did not cross the hub either.
    if ok2 and ok3:
        rc, out = guest_sh("spoke2", f"ping -n -c 3 -i 0.5 -W 3 -t 1 -I {host('spoke2')} "
                                     f"{host('spoke3')}")
        print(f"spoke2$ ping -t 1 -I {host('spoke2')} {host('spoke3')}\n{out}", flush=True)
        check(rc == 0 and "ttl=64" in out and "ttl=63" not in out,
              "spoke2 -> spoke3 echo with TTL 1 answered, replies at TTL 64: no hop between "
              "the spokes either way", out)
        rx0, tx0 = worker_packets(hub)
        rc, out = guest_sh("spoke2", f"ping -n -c {BURST} -i 0.2 -W 3 -I {host('spoke2')} "
                                     f"{host('spoke3')}")
        rx1, tx1 = worker_packets(hub)
        check(rc == 0, f"spoke2's LAN pings spoke3's over the shortcut ({BURST} echoes)", out)
        # Through the hub the burst alone would be 2 x BURST in and out (requests and replies);
        # the rest is BGP keepalives and NHRP over the same seconds.
        check(rx1 - rx0 < BURST and tx1 - tx0 < BURST,
              f"the hub's workers: rx +{rx1 - rx0}, tx +{tx1 - tx0} during {BURST} echoes and "
              f"their replies (through the hub: +{2 * BURST} each)")

    time.sleep(1.0)
    pk = hf.read_capture(cap)
    step(f"capture: {len(pk)} GRE packets")
    s2n, s3n = hf.SPOKES["spoke2"][0], hf.SPOKES["spoke3"][0]

    def seen(src, dst, kind, detail=None):
        return any(p[0] == src and p[1] == dst and p[2] == kind and
                   (detail is None or p[3] == detail) for p in pk)
    fwd = (host("spoke2"), host("spoke3"), 1)
    back = (host("spoke3"), host("spoke2"), 1)
    check(seen(s2n, HUB_NBMA, "ip", fwd) and seen(HUB_NBMA, s3n, "ip", fwd),
          "capture: 192.168.2.1 -> 192.168.3.1 first crossed the hub (GRE .2 -> .1, .1 -> .3)")
    check(seen(HUB_NBMA, s2n, "nhrp", 8) and seen(HUB_NBMA, s3n, "nhrp", 8),
          "capture: Traffic Indications hub -> spoke2 and hub -> spoke3")
    check(seen(HUB_NBMA, s3n, "nhrp", 1) and seen(HUB_NBMA, s2n, "nhrp", 1),
          "capture: the hub forwarded Resolution Requests to the owner of each LAN "
          "(hub -> spoke3, hub -> spoke2)")
    # An owner (FRR) sends its Resolution Reply towards the requester's overlay address: through
    # the hub (which hands it on: control/nhrp/server.cpp serve_resolution_reply) while that
    # address is reached through the hub, straight once the owner has its own binding for it.
    for owner, req in (("spoke3", "spoke2"), ("spoke2", "spoke3")):
        o, r = hf.SPOKES[owner][0], hf.SPOKES[req][0]
        via_hub = seen(o, HUB_NBMA, "nhrp", 2) and seen(HUB_NBMA, r, "nhrp", 2)
        check(via_hub or seen(o, r, "nhrp", 2),
              f"capture: {owner}'s Resolution Reply reached {req} "
              f"({'through the hub' if via_hub else 'straight'})")
    check(seen(s2n, s3n, "ip", fwd) and seen(s3n, s2n, "ip", back),
          "capture: after the shortcut the echoes go straight between the spokes both ways "
          "(GRE .2 -> .3 and .3 -> .2)")
    check(hub.alive(), "the hub is still running")


def main():
    return hr.main("hub_frr_phase3", "bgpd", checks, setup)


if __name__ == "__main__":
    sys.exit(main())
