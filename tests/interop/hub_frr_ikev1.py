#!/usr/bin/python3
"""Interop: our hub keys real FRR nhrpd spokes by IKEv1 (issue 11 part 7): tests/interop/
hub_frr_ike.py's rig (FRR 8.4 spokes in qemu guests, our hub on the bridge, GRE key 42) with
strongSwan 5.9.8 in the guests at `version = 1` (`rig --ipsec psk --ipsec-version 1
--ipsec-nhs`) and the hub's tunnel protected by an `ike: version: 1` profile (wildcard PSK, the
ISAKMP policies and transform sets of tests/interop/strongswan_hub_ikev1.py). Spokes without
`ip nhrp shortcut`: spoke-to-spoke traffic always crosses the hub (ESP in, ESP out).

The seeds' exact proposals, one per spoke, from the first NHRP packet on (the spoke's trap):
  spoke2: ISAKMP 3des-md5-modp1024, ESP esp-3des esp-md5-hmac;
  spoke3: ISAKMP aes128-sha1-modp1024, ESP aes128-sha1 with PFS group 2, lifetime 120 s;
then spoke2 again with a strong one (aes256-sha256-modp2048, ESP aes256-sha256, PFS group 14):
its IKE SA is terminated, swanctl.conf swapped, Main Mode again.
Asserts for each: the spoke registers through ESP; the hub's `show crypto isakmp sa --json`
has the spoke QM_IDLE ACTIVE with the proposal's encryption, hash and group, `show crypto ipsec
sa --json` an ACTIVE transport pair with GRE selectors that decapsulated and encapsulated;
the guest's swanctl shows IKEv1 ESTABLISHED with the same algorithms and an INSTALLED
transport CHILD_SA (spoke3: PFS MODP_1024, life <= 120 s); spoke2 <-> spoke3 ping through
the hub; no GRE in clear on the bridge. Then tshark, given the keys (the spokes' charon logs
at `ike 4`: initiator cookie and encryption key Ka per ISAKMP SA; `ip xfrm state` in the
guests for ESP), decrypts every Quick Mode message (HASH, SA, Nonce, IDs with protocol 47)
and the ESP (GRE key 42 around the ICMP between the spokes).

  --record DIR   also keep the capture and its key files there (tests/data/captures/strongswan/)
Needs root, qemu (exit 77 without), build/dmvpn-hub, tshark. Own namespace and run directory
(dmvpn-hubikev1, /run/dmvpn-hubikev1). About 3-5 minutes with the image built.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("DMVPN_HUBFRR_NS", "dmvpn-hubikev1")
os.environ.setdefault("DMVPN_HUBFRR_RUN", "/run/dmvpn-hubikev1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import hub_frr as hf  # noqa: E402
import hub_frr_ike as hfi  # noqa: E402
import strongswan as ss  # noqa: E402
import strongswan_guests as sg  # noqa: E402
import strongswan_hub_ikev1  # noqa: E402

check, step, guest_sh, wait_for = hf.check, hf.step, hf.guest_sh, hf.wait_for
HUB_NBMA, HUB_OVL = hf.HUB_NBMA, hf.HUB_OVL
NAME = "strongswan-5.9.8-frr-guests-ikev1-psk-dmvpn-hub-3des-md5-aes128-sha1-pfs2-aes256"
BOOT_S = 240
LIMIT_S = 600  # the run after the image (346 s seen at load 14); meson's timeout (900) is above it

# spoke -> (IKE proposal, ESP proposal, rekey, life; what the hub and swanctl must show)
SEEDS = {
    "spoke2": ("3des-md5-modp1024", "3des-md5", "1h", "",
               {"encr": "3DES", "keysize": 192, "hash": "MD5", "dh_group": 2},
               {"encr-alg": "3DES_CBC", "integ-alg": "HMAC_MD5_96", "dh-group": "MODP_1024"},
               {"encr-alg": "3DES_CBC", "integ-alg": "HMAC_MD5_96"}),
    "spoke3": ("aes128-sha1-modp1024", "aes128-sha1-modp1024", "100s", "120s",
               {"encr": "AES", "keysize": 128, "hash": "SHA", "dh_group": 2},
               {"encr-alg": "AES_CBC", "encr-keysize": "128", "integ-alg": "HMAC_SHA1_96",
                "dh-group": "MODP_1024"},
               {"encr-alg": "AES_CBC", "encr-keysize": "128", "integ-alg": "HMAC_SHA1_96",
                "dh-group": "MODP_1024"}),
}
STRONG = ("aes256-sha256-modp2048", "aes256-sha256-modp2048",
          {"encr": "AES", "keysize": 256, "hash": "SHA256", "dh_group": 14},
          {"encr-alg": "AES_CBC", "encr-keysize": "256", "integ-alg": "HMAC_SHA2_256_128",
           "dh-group": "MODP_2048"},
          {"encr-alg": "AES_CBC", "encr-keysize": "256", "integ-alg": "HMAC_SHA2_256_128",
           "dh-group": "MODP_2048"})


def isakmp_row(hub, peer):
    return next((r for r in hub.ctl_json("show", "crypto", "isakmp", "sa")["isakmp_sas"]
                 if r["src"] == peer and r["state"] == "QM_IDLE"), None)


def guest_v1(guest):
    """(ike, child) of the guest's ESTABLISHED IKEv1 SA with the hub and its INSTALLED
    transport GRE CHILD_SA, or None."""
    for ike, ch in hfi.guest_sa_with(guest, HUB_NBMA):
        if ike.get("version") == "1":
            return ike, ch[-1]
    return None


def check_keyed(hub, spoke, what, hub_want, ike_want, child_want, life=None):
    nbma = hf.SPOKES[spoke][0]
    row = wait_for(lambda: isakmp_row(hub, nbma), 60, 1)
    check(row is not None and all(row[k] == v for k, v in hub_want.items()) and
          row["status"] == "ACTIVE",
          f"{what}: hub: show crypto isakmp sa: {spoke} QM_IDLE ACTIVE {hub_want}", str(row))
    f = hfi.hub_flow(hub, nbma)
    check(f is not None and f["local_ident"]["prot"] == 47 and f["remote_ident"]["prot"] == 47
          and any(s["mode"] == "Transport" and s["status"] == "ACTIVE" for s in f["inbound"]),
          f"{what}: hub: show crypto ipsec sa: transport pair {HUB_NBMA} <-> {nbma}, GRE, ACTIVE",
          str(f))

    rc, out = guest_sh(spoke, f"ping -n -c 3 -i 0.5 -W 3 {HUB_OVL}")
    check(rc == 0, f"{what}: {spoke} pings the hub's overlay address (GRE in this pair's ESP)",
          out)
    # The workers' counters reach the IKEv1 engine with the once-a-second usage report.
    counted = wait_for(lambda: (lambda x: x if x and x["decaps"] and x["encaps"] else None)(
        hfi.hub_flow(hub, nbma)), 10, 0.5)
    check(counted is not None, f"{what}: hub: show crypto ipsec sa counts the pings on the "
          f"IKEv1 pair", str(hfi.hub_flow(hub, nbma)))
    g = wait_for(lambda: guest_v1(spoke), 20, 1)
    ike, child = g if g else ({}, {})
    check(g is not None and all(ike.get(k) == v for k, v in ike_want.items()) and
          all(child.get(k) == v for k, v in child_want.items()),
          f"{what}: {spoke}: swanctl: IKEv1 SA with the hub ESTABLISHED {ike_want}, CHILD_SA "
          f"INSTALLED TRANSPORT {child_want}",
          str(g) + guest_sh(spoke, "swanctl --list-sas")[1])
    if life is not None and g:
        check(int(child.get("life-time", 1 << 30)) <= life,
              f"{what}: {spoke}'s CHILD_SA expires within {life} s (life-time "
              f"{child.get('life-time')} s, rekey in {child.get('rekey-time')} s)", str(child))


def v1_keys(guest):
    """[(initiator cookie hex, Ka hex, encr, ike dict)] for the IKEv1 SAs `guest` initiated,
    from `swanctl --list-sas --raw` (cookies) and its charon log at ike 4 (Ka by unique id)."""
    log = guest_log(guest)
    ka = {}
    for group, ike, label, data in ss.log_dumps(log):
        if group == "IKE" and label == "encryption key Ka":
            ka[ike.split("|")[-1]] = data
    out = []
    for ike, _ in hfi.swanctl_sas(guest):
        k = ka.get(ike.get("uniqueid"))
        if ike.get("version") == "1" and ike.get("initiator") == "yes" and k:
            out.append((ike["initiator-spi"], k.hex(), ike))
    return out


def guest_log(guest):
    p = hf.RUN / "guests" / guest / "logs" / "charon.log"
    return p.read_text(errors="replace") if p.exists() else ""


def esp_row(st):
    """One esp_sa UAT row (Wireshark 4.0's names) for an `ip xfrm state` entry."""
    encr = {"aes": "AES-CBC [RFC3602]", "des3_ede": "TripleDES-CBC [RFC2451]"}[st["enc_alg"]]
    auth = {"sha1": "HMAC-SHA-1-96 [RFC2404]", "sha256": "HMAC-SHA-256-128 [RFC4868]",
            "md5": "HMAC-MD5-96 [RFC2403]"}[st["auth"]]
    return (f'"IPv4","{st["src"]}","{st["dst"]}","{st["spi"]}","{encr}","0x{st["enc"]}",'
            f'"{auth}","0x{st["auth_key"]}"')


def xfrm_states(text):
    """`ip xfrm state` ESP entries with CBC ciphers: [{"src", "dst", "spi", "enc_alg", "enc",
    "auth", "auth_key"}]."""
    out = []
    for block in re.split(r"\n(?=src )", text.strip()):
        m = re.match(r"src (\S+) dst (\S+)\s+proto esp spi (0x[0-9a-f]+)", block)
        e = re.search(r"enc cbc\((aes|des3_ede)\) 0x([0-9a-f]+)", block)
        h = re.search(r"auth(?:-trunc)? hmac\((sha1|sha256|md5)\) 0x([0-9a-f]+)", block)
        if m and e and h:
            out.append({"src": m.group(1), "dst": m.group(2), "spi": m.group(3),
                        "enc_alg": e.group(1), "enc": e.group(2), "auth": h.group(1),
                        "auth_key": h.group(2)})
    return out


def check_capture(cap, keys, states, record):
    """tshark with the keys: every Quick Mode message and the ESP decrypt."""
    work = Path(tempfile.mkdtemp(prefix="ikev1-ws-"))
    try:
        pcap = work / "cut.pcap"
        subprocess.run(["tshark", "-r", str(cap), "-Y", "isakmp || esp || arp", "-w", str(pcap),
                        "-F", "pcap"], check=True, capture_output=True, timeout=120)
        table = "# This file is automatically generated, DO NOT MODIFY.\n" + "".join(
            f"{c},{k}\n" for c, k in sorted({(c, k) for c, k, _ in keys}))
        esp = "# This file is automatically generated, DO NOT MODIFY.\n" + "".join(
            esp_row(s) + "\n" for s in states)
        (work / "ikev1_decryption_table").write_text(table)
        (work / "esp_sa").write_text(esp)
        (work / "preferences").write_text("esp.enable_encryption_decode: TRUE\n"
                                          "esp.enable_authentication_check: TRUE\n")
        qm = sg.tshark(pcap, work, "-Y", "isakmp.exchangetype == 32", "-T", "fields",
                       "-e", "isakmp.ispi", "-e", "isakmp.typepayload",
                       "-e", "isakmp.id.protoid")
        rows = [l.split("\t") for l in qm.strip().splitlines()]
        # Quick Mode 1 and 2 carry HASH(8), SA(1), Nonce(10) (KE(4) with PFS), IDci/IDcr(5);
        # QM3 only a HASH.
        full = [r for r in rows if len(r) == 3 and {"8", "1", "10", "5"} <=
                set(r[1].split(","))]
        check(len(rows) >= 3 and len(full) >= 2 and all(
                  set(r[2].split(",")) == {"47"} for r in full),
              f"tshark decrypts Quick Mode: {len(full)} of {len(rows)} messages show HASH, SA, "
              "Nonce and IDs with protocol 47 (GRE)", qm[:3000])
        gre = sg.tshark(pcap, work, "-Y", "ip.proto == 47", "-T", "fields", "-e", "frame.number")
        check(gre.strip() == "", "the capture holds no GRE in clear", gre[:500])
        pk = sg.tshark(pcap, work, "-Y", "esp", "-T", "fields", "-e", "esp.spi", "-e",
                       "gre.key", "-e", "icmp.type", "-e", "ip.src", "-e", "ip.dst")
        s2, s3 = hf.SPOKES["spoke2"][1], hf.SPOKES["spoke3"][1]
        inner = [f for f in (l.split("\t") for l in pk.splitlines())
                 if len(f) == 5 and f[1] in ("42", "0x0000002a") and f[2] in ("0", "8")
                 and {s2, s3} <= set(f[3].split(",") + f[4].split(","))]
        check(len(inner) >= 8, f"tshark decrypts the ESP: {len(inner)} of {len(pk.splitlines())} "
                               "ESP packets hold GRE key 42 around spoke2 <-> spoke3 ICMP",
              pk[:2000])
        if record:
            record.mkdir(parents=True, exist_ok=True)
            shutil.copy(pcap, record / f"{NAME}.pcap")
            (record / f"{NAME}.ikev1_decryption_table").write_text(table)
            (record / f"{NAME}.esp_sa").write_text(esp)
            lines = [f"# {NAME}: FRR 8.4 spokes with strongSwan 5.9.8 (IKEv1, PSK "
                     f"{hfi.PSK}) in Debian 12 qemu guests, our hub on the bridge; keys from "
                     "the spokes' charon (ike 4: encryption key Ka) and ip xfrm state"]
            for c, k, ike in keys:
                lines += ["", f"[ISAKMP SA] {ike.get('local-host')} -> {ike.get('remote-host')}",
                          f"initiator cookie = {c}", f"responder cookie = "
                          f"{ike.get('responder-spi')}", f"proposal = {ike.get('encr-alg')}_"
                          f"{ike.get('encr-keysize', '')}/{ike.get('integ-alg')}/"
                          f"{ike.get('dh-group')}", f"Ka = {k}"]
            lines += ["", "[ESP SAs] (ip xfrm state in the spokes)"]
            lines += [f"{s['src']} -> {s['dst']} spi {s['spi']} {s['enc_alg']} {s['enc']} "
                      f"hmac({s['auth']}) {s['auth_key']}" for s in states]
            (record / f"{NAME}.keys.txt").write_text("\n".join(lines) + "\n")
            step(f"recorded {NAME}.* in {record}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def swap_to_strong(spoke):
    """spoke's --ipsec-nhs connection gets the strong proposal: its share's swanctl.conf
    edited, loaded, the seed's IKE SA terminated (the hub drops SAs and registration), the
    child initiated again."""
    conf = hf.RUN / "guests" / spoke / "swanctl.conf"
    text = conf.read_text()
    ike0, esp0 = SEEDS[spoke][:2]
    head, _, tail = text.partition("  dmvpn-nhs {")
    tail = tail.replace(f"proposals = {ike0}", f"proposals = {STRONG[0]}", 1)
    tail = tail.replace(f"esp_proposals = {esp0}", f"esp_proposals = {STRONG[1]}", 1)
    conf.write_text(head + "  dmvpn-nhs {" + tail)
    rc, out = guest_sh(spoke, "cp /mnt/host/swanctl.conf /etc/swanctl/swanctl.conf && "
                              "swanctl --load-all && swanctl --terminate --ike dmvpn-nhs "
                              "--timeout 20 && swanctl --initiate --child dmvpn-nhs "
                              "--timeout 60", 120)
    check(rc == 0, f"{spoke}: swanctl.conf with {STRONG[0]} loaded, the seed's ISAKMP SA "
                   "terminated, the strong one initiated", out)


def make_checks(record):
    def checks(hub, cap):
        if not hf.check_registered(hub):
            return
        step("registered")
        for spoke, (ike, esp, _, life, hub_want, ike_want, child_want) in SEEDS.items():
            check_keyed(hub, spoke, f"seed {ike} / {esp}", hub_want, ike_want, child_want,
                        120 if life else None)
        step("seeds keyed")
        s3 = hf.SPOKES["spoke3"][1]
        rc, out = guest_sh("spoke2", f"ping -n -c 6 -i 0.5 -W 3 {s3}")
        check(rc == 0, "spoke2 (3DES/MD5) pings spoke3 (AES/SHA-1) through the hub", out)
        # spoke2's seed SAs go with the swap, spoke3's first CHILD_SA with its 120 s
        # lifetime: their keys now.
        states = [s for g in ("spoke2", "spoke3")
                  for s in xfrm_states(guest_sh(g, "ip xfrm state")[1])]
        keys = v1_keys("spoke2")
        swap_to_strong("spoke2")
        nbma2, ovl2 = hf.SPOKES["spoke2"]
        back = wait_for(lambda: hfi.registered(hub, ovl2), 60, 1)
        check(back, "spoke2 registers again through the strong ISAKMP SA",
              hub.ctl("show", "nhrp")[1])
        check_keyed(hub, "spoke2", f"strong {STRONG[0]}", *STRONG[2:])
        step("strong keyed")
        rc, out = guest_sh("spoke3", f"ping -n -c 6 -i 0.5 -W 3 {hf.SPOKES['spoke2'][1]}")
        check(rc == 0, "spoke3 pings spoke2 (now AES-256/SHA-256) through the hub", out)
        time.sleep(1.0)
        for g in ("spoke2", "spoke3"):
            states += xfrm_states(guest_sh(g, "ip xfrm state")[1])
        states = list({s["spi"] + s["dst"]: s for s in states}.values())
        keys = list({k[0]: k for k in keys + v1_keys("spoke2") + v1_keys("spoke3")}.values())
        step(f"keys: {len(keys)} ISAKMP SAs, {len(states)} ESP SAs")
        check(len(keys) >= 3, "Ka of the three ISAKMP SAs (two seeds, the strong one) in the "
                              "spokes' charon logs", str(keys))
        check_capture(cap, keys, states, record)
        check(hub.alive(), "the hub is still running")
    return checks


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--record", type=Path)
    args = ap.parse_args()
    hf.plan_spokes(2)
    rc = hf.preflight("hub_frr_ikev1")
    if rc is not None:
        return rc
    if shutil.which("tshark") is None:
        print("hub_frr_ikev1: FAIL: tshark is not installed")
        return 1

    def setup(work):
        cfg = work / "hub.yaml"
        cfg.write_text(strongswan_hub_ikev1.hub_config())
        rig_args = ["--ipsec", "psk", "--ipsec-version", "1", "--ipsec-nhs", "--no-shortcut",
                    "--ipsec-log", "4", "--ipsec-proposals", STRONG[0], "--ipsec-esp",
                    STRONG[1]]
        for ike, esp, rekey, life, *_ in SEEDS.values():
            rig_args += ["--ipsec-nhs-child", "/".join([ike, esp, rekey] + ([life] if life
                                                                             else []))]
        return cfg, rig_args

    return hf.run_rig(make_checks(args.record), log_level="info", setup=setup, boot_s=BOOT_S,
                      limit_s=LIMIT_S)


if __name__ == "__main__":
    sys.exit(main())
