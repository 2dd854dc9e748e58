#!/usr/bin/python3
"""Interop: our hub keys real FRR nhrpd spokes' IPsec by IKEv2: tests/interop/hub_frr.py's rig
(FRR 8.4 spokes in qemu guests, our hub on a net_tap port on the bridge, Phase 3, GRE key 42)
with the hub's tunnel protected by an `ike:` profile and strongSwan 5.9.8 in every guest
(`rig --ipsec psk|cert --ipsec-nhs`): transport-mode ESP for GRE, swanctl trap policies towards
the hub's NBMA address and towards the other spoke (Debian's charon lacks the VICI calls nhrpd's
`tunnel protection` makes: scripts/interop/README.md), so the spoke's first NHRP packet to
the hub starts IKEv2 and the first shortcut packet to the other spoke starts a spoke-to-spoke
IKEv2. The guests' kernels do the ESP (this host's kernel has none).

Asserts, --auth psk (one wildcard key) or cert (a CA made here with strongSwan's pki, ECDSA
P-256; each guest and the hub certified for its NBMA address, shipped into the guests'
/etc/swanctl):
  - every spoke registers (hub_frr.check_registered);
  - the hub's `show crypto ikev2 sa --json` holds a READY IKE SA with each spoke (Auth sign
    and Auth verify PSK with PSK, ECDSA with certificates), each
    spoke's charon verified the hub's ECDSA certificate, and `show crypto ipsec sa --json`
    an ACTIVE transport pair whose selectors are the NBMA addresses with protocol 47 that
    decapsulated and encapsulated packets; each guest's `swanctl --list-sas` shows the IKE SA
    with the hub ESTABLISHED and a CHILD_SA INSTALLED, TRANSPORT, ESP, GRE selectors;
  - spoke2 pings the hub's overlay address and spoke3's, a Phase 3 shortcut forms and brings
    up an IKE SA and a CHILD_SA between the two guests (swanctl in both), and the shortcut
    ping crosses;
  - on the bridge no GRE ever goes in clear, and ESP crosses spoke -> hub, hub -> spoke (both
    spokes) and spoke2 <-> spoke3 (the shortcut);
psk only:
  - a CHILD_SA rekey under traffic (the spokes' rekey_time 30 s with the hub): spoke2 pings
    the hub every 0.2 s across it; the rekey must happen (new SPIs in the guest and in the
    hub) and the lost echoes are counted and printed (0 required);
  - DELETE: `swanctl --terminate --ike dmvpn-nhs` in spoke3: the hub drops the IKE SA, the
    ESP pair and spoke3's NHRP registration (as IOS does); spoke3's next registration keys
    a new IKE SA and registers again;
  - DPD: charon killed (SIGKILL) in spoke2: the hub's DPD (20 s interval, 3 retransmissions)
    declares the peer dead and drops its SAs and NHRP registration.

  --auth psk|cert       which authentication (default psk)
  --keep-capture FILE   also write the bridge capture (ARP and IPv4) to FILE as pcapng
Needs root, qemu (exit 77 without), build/dmvpn-hub, tshark/scapy, and pki for cert. Own
namespace and run directory (dmvpn-hubike, /run/dmvpn-hubike).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("DMVPN_HUBFRR_NS", "dmvpn-hubike")
os.environ.setdefault("DMVPN_HUBFRR_RUN", "/run/dmvpn-hubike")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import hub_frr as hf  # noqa: E402
import strongswan_guests as sg  # noqa: E402
import strongswan_hub_ike  # noqa: E402

check, step, vtysh, guest_sh, wait_for = hf.check, hf.step, hf.vtysh, hf.guest_sh, hf.wait_for
HUB_NBMA, HUB_OVL = hf.HUB_NBMA, hf.HUB_OVL
PSK = strongswan_hub_ike.PSK  # also the rig's default --ipsec-psk
CHILD_REKEY_S = 30
BOOT_S = 540
DPD = "dpd-interval: 20\n      dpd-retries: 3"


def hub_config(auth, certs):
    """interop.yaml with the `ikev2` profile of strongswan_hub_ike.py on its tunnel, DPD every
    10 s; cert: the hub's certificate, key and the CA instead of the key."""
    text = strongswan_hub_ike.hub_config().replace("dpd-interval: 0", DPD)
    if auth == "cert":
        text = text.replace(
            f"authentication: psk\n      psk: {PSK}",
            f"authentication: certificate\n      local-id: {HUB_NBMA}\n"
            f"      certificate: {certs}/hub.pem\n      private-key: {certs}/hub.key\n"
            f"      ca: [{certs}/ca.pem]")
        assert "authentication: certificate" in text
    return text


def make_ca(d):
    """A CA with strongSwan's pki (ECDSA P-256) in d: ca.pem; hub.pem/.key and
    spokeN.pem/.key, each naming its NBMA address (subject CN and subjectAltName)."""
    d.mkdir(mode=0o700)

    def pki(*args, stdin=None):
        r = subprocess.run(["pki", *args], input=stdin, capture_output=True, timeout=60)
        if r.returncode != 0:
            raise AssertionError(f"pki {' '.join(args)}: {r.stderr.decode(errors='replace')}")
        return r.stdout

    (d / "ca.key").write_bytes(pki("--gen", "--type", "ecdsa", "--size", "256",
                                   "--outform", "pem"))
    (d / "ca.pem").write_bytes(pki("--self", "--ca", "--lifetime", "2", "--in", str(d / "ca.key"),
                                   "--type", "ecdsa", "--dn", "O=dmvpn-hub interop, CN=interop CA",
                                   "--outform", "pem"))
    for name, nbma in [("hub", HUB_NBMA)] + [(n, a) for n, (a, _) in hf.SPOKES.items()]:
        key = pki("--gen", "--type", "ecdsa", "--size", "256", "--outform", "pem")
        (d / f"{name}.key").write_bytes(key)
        (d / f"{name}.key").chmod(0o600)
        pub = pki("--pub", "--in", str(d / f"{name}.key"), "--type", "ecdsa")
        (d / f"{name}.pem").write_bytes(pki(
            "--issue", "--cacert", str(d / "ca.pem"), "--cakey", str(d / "ca.key"),
            "--type", "pub", "--dn", f"O=dmvpn-hub interop, CN={nbma}", "--san", nbma,
            "--lifetime", "1", "--outform", "pem", stdin=pub))


def swanctl_sas(guest):
    return sg.raw_sas(guest_sh(guest, "swanctl --list-sas --raw")[1])


def guest_sa_with(guest, peer):
    """(ike, installed transport ESP children with GRE selectors) of the guest's ESTABLISHED
    IKE SAs with `peer`, or []."""
    nbma = hf.SPOKES[guest][0]
    out = []
    for ike, children in swanctl_sas(guest):
        if ike.get("state") != "ESTABLISHED" or ike.get("remote-host") != peer:
            continue
        ch = [c for c in children if c.get("state") == "INSTALLED" and c.get("mode") ==
              "TRANSPORT" and c.get("protocol") == "ESP" and c.get("local-ts") ==
              f"[{nbma}/32[gre]]" and c.get("remote-ts") == f"[{peer}/32[gre]]"]
        if ch:
            out.append((ike, ch))
    return out


def hub_ike(hub, peer):
    return [s for s in hub.ctl_json("show", "crypto", "ikev2", "sa")["ikev2_sas"]
            if s["remote"] == peer]


def hub_flow(hub, peer):
    """The hub's `show crypto ipsec sa --json` flow with peer, or None."""
    return next((f for f in hub.ctl_json("show", "crypto", "ipsec", "sa")["ipsec_sas"]
                 if f["peer"] == peer), None)


def registered(hub, ovl):
    return any(e["protocol"] == ovl + "/32" and "registered" in e["flags"]
               for e in hub.ctl_json("show", "nhrp"))


def esp_pairs(cap):
    """(outer src, outer dst) -> count of ESP packets, and the number of GRE packets (in
    clear) on the bridge."""
    from scapy.all import IP, PcapReader  # noqa: E402 (scapy is slow to import)
    esp, gre = {}, 0
    try:
        with PcapReader(str(cap)) as rd:
            for pkt in rd:
                if IP not in pkt:
                    continue
                if pkt[IP].proto == 50:
                    k = (pkt[IP].src, pkt[IP].dst)
                    esp[k] = esp.get(k, 0) + 1
                elif pkt[IP].proto == 47:
                    gre += 1
    except Exception as e:  # a record tcpdump is still writing
        print(f"hub_frr_ike: capture read stopped: {e}")
    return esp, gre


def check_keyed(hub, auth):
    """Each spoke's IKE SA and transport CHILD_SA with the hub, from both sides."""
    verify = "PSK" if auth == "psk" else "ECDSA"
    for spoke, (nbma, _) in hf.SPOKES.items():
        sas = hub_ike(hub, nbma)
        check(len(sas) >= 1 and all(s["status"] == "READY" for s in sas) and
              any(s["child_sas"] >= 1 for s in sas),
              f"hub: show crypto ikev2 sa: a READY IKE SA with {spoke} ({nbma}) with a CHILD_SA",
              str(sas))
        # Auth sign: how the hub signed its AUTH; Auth verify: how the spoke's AUTH verified.
        shown = sorted({(s["auth_sign"], s["auth_verify"]) for s in sas})
        check(shown == [(verify, verify)],
              f"hub: {spoke}'s IKE SA shows Auth sign {verify}, Auth verify {verify}", str(sas))
        f = hub_flow(hub, nbma)
        ok = (f is not None and f["local"] == HUB_NBMA and f["local_ident"]["prot"] == 47 and
              f["remote_ident"]["addr"] == nbma and f["remote_ident"]["prot"] == 47 and
              any(s["mode"] == "Transport" and s["status"] == "ACTIVE" for s in f["inbound"]) and
              any(s["mode"] == "Transport" and s["status"] == "ACTIVE" for s in f["outbound"]))
        check(ok, f"hub: show crypto ipsec sa: {spoke}'s transport ESP pair, GRE selectors "
                  f"{HUB_NBMA} <-> {nbma}, ACTIVE", str(f))

        # The counters belong to the current pair (a 30 s rekey starts them again) and come
        # with the workers' usage report: ping the hub, then read them.
        def counted():
            guest_sh(spoke, f"ping -n -c 2 -i 0.3 -W 2 {HUB_OVL}")
            f = hub_flow(hub, nbma)
            return f if f and f["decaps"] > 0 and f["encaps"] > 0 else None
        f = wait_for(counted, 30, 1) or hub_flow(hub, nbma)
        check(f and f["decaps"] > 0 and f["encaps"] > 0,
              f"hub: show crypto ipsec sa: {spoke}'s pair decapsulated and encapsulated packets "
              f"({f and f['decaps']} / {f and f['encaps']})", str(f))
        g = guest_sa_with(spoke, HUB_NBMA)
        check(bool(g), f"{spoke}: swanctl: IKE SA with the hub ESTABLISHED, CHILD_SA INSTALLED, "
                       f"TRANSPORT, ESP, [{nbma}/32[gre]] === [{HUB_NBMA}/32[gre]]",
              guest_sh(spoke, "swanctl --list-sas")[1])
        if g and auth == "cert":
            text = guest_sh(spoke, "grep -h \"authentication of '198.51.100.1' with ECDSA\" "
                                   "/mnt/host/logs/charon.log | head -1")[1]
            check("successful" in text, f"{spoke}: charon verified the hub's ECDSA signature "
                                        f"(its certificate from the CA)", text)


def check_traffic_and_shortcut(hub, cap):
    s2_nbma, s2 = hf.SPOKES["spoke2"]
    s3_nbma, s3 = hf.SPOKES["spoke3"]
    rc, out = guest_sh("spoke2", f"ping -n -c 3 -i 0.5 -W 3 {HUB_OVL}")
    check(rc == 0, f"spoke2 pings the hub's overlay address {HUB_OVL} (in ESP)", out)
    rc, out = guest_sh("spoke2", f"ping -n -c 6 -i 0.5 -W 3 {s3}")
    check(rc == 0, f"spoke2 pings spoke3 ({s3}) through the hub", out)
    t = time.time()
    if hf.wait_shortcut("spoke2", "spoke3", 90):
        step(f"shortcut after {time.time() - t:.0f} s")
        # The shortcut's first packet hits spoke2's trap towards spoke3 (or spoke3's, for the
        # Resolution Reply): an IKE SA between the guests, whichever initiated.
        sa = wait_for(lambda: guest_sa_with("spoke2", s3_nbma) and
                      guest_sa_with("spoke3", s2_nbma), 30, 1)
        check(bool(sa), "the shortcut brought up an IKE SA and a transport GRE CHILD_SA between "
                        "spoke2 and spoke3 (swanctl in both)",
              guest_sh("spoke2", "swanctl --list-sas")[1] +
              guest_sh("spoke3", "swanctl --list-sas")[1])
        rc, out = guest_sh("spoke2", f"ping -n -c 4 -i 0.5 -W 3 {s3}")
        check(rc == 0, "spoke2 pings spoke3 over the shortcut", out)
    time.sleep(1.0)
    esp, gre = esp_pairs(cap)
    step(f"capture: ESP {esp}, GRE in clear {gre}")
    check(gre == 0, "capture: no GRE in clear on the bridge (NHRP and data all in ESP)")
    for spoke, (nbma, _) in hf.SPOKES.items():
        check(esp.get((nbma, HUB_NBMA), 0) > 0 and esp.get((HUB_NBMA, nbma), 0) > 0,
              f"capture: ESP {spoke} -> hub and hub -> {spoke}")
    check(esp.get((s2_nbma, s3_nbma), 0) > 0 and esp.get((s3_nbma, s2_nbma), 0) > 0,
          "capture: ESP spoke2 <-> spoke3 straight (the shortcut)")


def child_spis(guest):
    return {c.get("spi-in") for _, ch in guest_sa_with(guest, HUB_NBMA) for c in ch}


def hub_in_spis(hub, peer):
    f = hub_flow(hub, peer)
    return {s["spi"] for s in f["inbound"]} if f else set()


def check_rekey(hub):
    """spoke2 pings the hub every 0.2 s for CHILD_REKEY_S + 12 s: at least one CHILD_SA rekey
    (the guests' rekey_time) falls inside; lost echoes counted."""
    nbma = hf.SPOKES["spoke2"][0]
    before, hub_before = child_spis("spoke2"), hub_in_spis(hub, nbma)
    n = int((CHILD_REKEY_S + 12) / 0.2)
    rc, out = guest_sh("spoke2", f"ping -n -q -c {n} -i 0.2 -W 2 {HUB_OVL}",
                       timeout=CHILD_REKEY_S + 60)
    m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    sent, got = (int(m.group(1)), int(m.group(2))) if m else (n, 0)
    after, hub_after = child_spis("spoke2"), hub_in_spis(hub, nbma)
    step(f"rekey under traffic: {sent} echoes, {got} answered, {sent - got} lost; spoke2's "
         f"CHILD_SA in-SPIs {sorted(before)} -> {sorted(after)}, the hub's inbound SPIs "
         f"{sorted(hub_before)} -> {sorted(hub_after)}")
    log = guest_sh("spoke2", "grep -c 'CHILD_SA dmvpn-nhs{[0-9]*} established' "
                             "/mnt/host/logs/charon.log")[1].strip()
    check(bool(after) and not (after & before) and hub_after and not (hub_after & hub_before),
          f"a CHILD_SA rekey with the hub happened under traffic (new SPIs in spoke2 and in the "
          f"hub; {log} CHILD_SAs dmvpn-nhs established in spoke2's charon log so far)")
    check(m is not None and got == sent,
          f"no echo lost across the rekey ({sent - got} of {sent} lost)", out)


def check_delete_and_dpd(hub):
    s2_nbma, s2 = hf.SPOKES["spoke2"]
    s3_nbma, s3 = hf.SPOKES["spoke3"]
    # DELETE: spoke3's charon deletes its IKE SA with the hub.
    rc, out = guest_sh("spoke3", "swanctl --terminate --ike dmvpn-nhs --timeout 20", 40)
    check(rc == 0, "spoke3: swanctl --terminate --ike dmvpn-nhs", out)
    t = time.time()
    gone = wait_for(lambda: not hub_ike(hub, s3_nbma) and hub_flow(hub, s3_nbma) is None
                    and not registered(hub, s3), 15, 0.3)
    check(gone, f"DELETE: the hub dropped spoke3's IKE SA, ESP pair and NHRP registration "
                f"({time.time() - t:.1f} s)", hub.ctl("show", "nhrp")[1] +
          hub.ctl("show", "crypto", "ikev2", "sa")[1])
    check(registered(hub, s2) and bool(hub_ike(hub, s2_nbma)),
          "DELETE: spoke2's IKE SA and registration stay")
    # DPD: spoke2's charon dies without a word (its kernel SAs stay).
    rc, out = guest_sh("spoke2", "kill -9 $(pidof charon-systemd)")
    check(rc == 0, "spoke2: charon-systemd killed (SIGKILL)", out)
    t = time.time()
    dead = wait_for(lambda: not hub_ike(hub, s2_nbma) and not registered(hub, s2), 90, 0.5)
    # (the hub's logger thread writes the line a moment after the IKE thread logs it)
    check(dead and wait_for(lambda: "dead peer detected" in hub.log(), 10, 0.2),
          f"DPD: the hub declared spoke2 dead and dropped its IKE SA and NHRP registration "
          f"({time.time() - t:.0f} s after the kill)", hub.log()[-3000:])
    check(hub_flow(hub, s2_nbma) is None, "DPD: spoke2's ESP pair is gone from the hub",
          str(hub_flow(hub, s2_nbma)))
    # spoke3's next registration (every 20 s) hits its trap again: a new IKE SA, registered.
    back = wait_for(lambda: registered(hub, s3) and bool(hub_ike(hub, s3_nbma)), 45, 1)
    check(back, "after the DELETE spoke3 keys a new IKE SA and registers again",
          hub.ctl("show", "nhrp")[1])


def make_checks(auth):
    def checks(hub, cap):
        if not hf.check_registered(hub):
            return
        step("registered")
        check_keyed(hub, auth)
        step("keyed")
        check_traffic_and_shortcut(hub, cap)
        step("traffic and shortcut")
        if auth == "psk":
            check_rekey(hub)
            check_delete_and_dpd(hub)
            step("rekey, DELETE, DPD")
        print(hub.ctl("show", "crypto", "ikev2", "sa")[1], flush=True)
        c = hub.ctl_json("show", "stats")["control"]
        print({k: v for k, v in c.items() if k.startswith("ike")}, flush=True)
        check(hub.alive(), "the hub is still running")
    return checks


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--auth", choices=("psk", "cert"), default="psk")
    ap.add_argument("--keep-capture", type=Path)
    args = ap.parse_args()
    hf.plan_spokes(2)
    rc = hf.preflight("hub_frr_ike")
    if rc is not None:
        return rc
    if args.auth == "cert" and shutil.which("pki") is None:
        print("hub_frr_ike: FAIL: strongSwan's pki is not installed (strongswan-pki)")
        return 1

    def setup(work):
        args_ = ["--ipsec", args.auth, "--ipsec-nhs", "--ipsec-nhs-rekey", f"{CHILD_REKEY_S}s",
                 "--ipsec-log", "1"]
        certs = work / "pki"
        if args.auth == "cert":
            make_ca(certs)
            args_ += ["--ipsec-certs", str(certs)]
        cfg = work / "hub.yaml"
        cfg.write_text(hub_config(args.auth, certs))
        return cfg, args_

    # On this shared 2-core machine TCG guests have needed over 300 s to boot under load.
    return hf.run_rig(make_checks(args.auth), keep=args.keep_capture, log_level="info",
                      setup=setup, boot_s=BOOT_S, limit_s=BOOT_S + 900)


if __name__ == "__main__":
    sys.exit(main())
