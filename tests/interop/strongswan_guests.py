#!/usr/bin/python3
"""strongSwan to strongSwan between two qemu guests of the interop rig (scripts/interop/rig
--hub none --spokes 2 --ipsec psk): the guest side of IPsec works with ESP in the guests'
kernels (this host's kernel has none), as a strongSwan DMVPN spoke will use it against the hub.

Each guest runs charon-systemd with the rig's swanctl.conf (scripts/interop/swanctl-dmvpn.conf:
the `dmvpn` profile for any peer, plus a trap connection per other guest, transport mode, GRE
selectors). The test adds a point-to-point GRE tunnel between the two guests' NBMA addresses
and pings across it: the first GRE packet hits the trap policy, charon negotiates IKEv2 with
the other guest, the kernel installs the ESP SAs, and the pings cross as ESP. Then spoke2
rekeys the CHILD_SA and the IKE SA while it pings.

Asserts: GRE brings up the CHILD_SA through the trap; then 12 of 12 echoes cross; `swanctl --list-sas` shows
the IKE SA ESTABLISHED and the CHILD_SA INSTALLED, TRANSPORT, ESP, with GRE selectors between
the two NBMA addresses, and packet counters that moved; on the bridge (tcpdump) the GRE went
as ESP only, never in clear; with the guests' keys (charon's log at `ike 4`, the kernel's
`ip xfrm state`) tshark decrypts IKE_AUTH (the response carries SA, TSi/TSr protocol 47 and
USE_TRANSPORT_MODE) and the ESP (inside: GRE key 7 carrying the ICMP echo between the tunnel
addresses); a CHILD_SA rekey and an IKE SA rekey (swanctl --rekey) during a ping lose no echo
and leave new SPIs (the capture is checked up to the rekeys). `--record DIR` also keeps the capture and its key files there (tests/data/captures/
strongswan/strongswan-5.9.8-guests-*). Needs root and qemu; exit 77 without
qemu-system-x86_64.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import strongswan as ss  # noqa: E402

SOURCE = Path(os.environ.get("DMVPN_SOURCE", HERE.parents[1]))
RIG = SOURCE / "scripts" / "interop" / "rig"
ENV = dict(os.environ,
           DMVPN_INTEROP_NS=os.environ.get("DMVPN_INTEROP_SS_NS", "dmvpn-interop-ss"),
           DMVPN_INTEROP_RUN=os.environ.get("DMVPN_INTEROP_SS_RUN", "/run/dmvpn-interop-ss"))
RUN = Path(ENV["DMVPN_INTEROP_RUN"])
A, B = ("spoke2", "198.51.100.2", "172.31.255.2"), ("spoke3", "198.51.100.3", "172.31.255.3")
NAME = "strongswan-5.9.8-guests-ikev2-psk-transport-gre-esp-aes256gcm16"

check = ss.Checks()


def rig(*args, timeout=120, ok=True):
    r = subprocess.run([str(RIG), *args], env=ENV, capture_output=True, text=True,
                       timeout=timeout)
    if ok and r.returncode != 0:
        raise AssertionError(f"rig {' '.join(args)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return r


def guest_sh(guest, script, timeout=60):
    return rig("sh", guest, script, "--timeout", str(timeout), timeout=timeout + 30, ok=False)


def raw_sas(text):
    """swanctl --list-sas --raw: [(ike dict, [child dicts])] (values without spaces, as here)."""
    out = []
    for m in re.finditer(r"list-sa event \{(\S+) \{(.*?) child-sas \{(.*)\}\}\}", text):
        ike = dict(kv.split("=", 1) for kv in m.group(2).split() if "=" in kv)
        children = [dict(kv.split("=", 1) for kv in c.split() if "=" in kv)
                    for c in re.findall(r"\S+ \{([^{}]*)\}", m.group(3))]
        out.append((ike, children))
    return out


def xfrm_states(text):
    """`ip xfrm state`: [{"src", "dst", "spi", "aead"|"enc"+"auth", key hex...}]"""
    states = []
    for block in re.split(r"\n(?=src )", text.strip()):
        m = re.match(r"src (\S+) dst (\S+)\s+proto esp spi (0x[0-9a-f]+)", block)
        if not m:
            continue
        st = {"src": m.group(1), "dst": m.group(2), "spi": m.group(3)}
        a = re.search(r"aead rfc4106\(gcm\(aes\)\) 0x([0-9a-f]+) (?:\((\d+) bits\) )?(\d+)", block)
        if a:
            st.update(aead=a.group(1), icv=int(a.group(3)))
        e = re.search(r"enc cbc\(aes\) 0x([0-9a-f]+)", block)
        h = re.search(r"auth-trunc hmac\((sha1|sha256)\) 0x([0-9a-f]+) (\d+)", block)
        if e and h:
            st.update(enc=e.group(1), auth=h.group(1), auth_key=h.group(2))
        states.append(st)
    return states


def esp_sa_row(st):
    if "aead" in st:
        if st["icv"] != 128:
            raise AssertionError(f"ICV {st['icv']} bits not handled")
        return (f'"IPv4","{st["src"]}","{st["dst"]}","{st["spi"]}",'
                f'"AES-GCM with 16 octet ICV [RFC4106]","0x{st["aead"]}","NULL",""')
    auth = {"sha1": "HMAC-SHA-1-96 [RFC2404]", "sha256": "HMAC-SHA-256-128 [RFC4868]"}
    return (f'"IPv4","{st["src"]}","{st["dst"]}","{st["spi"]}","AES-CBC [RFC3602]",'
            f'"0x{st["enc"]}","{auth[st["auth"]]}","0x{st["auth_key"]}"')


def tshark(pcap, cfg, *args):
    r = subprocess.run(["tshark", "-n", "-r", str(pcap), *args], capture_output=True, text=True,
                       timeout=120, env=dict(os.environ, WIRESHARK_CONFIG_DIR=str(cfg)))
    return r.stdout


def main():
    if shutil.which("qemu-system-x86_64") is None:
        print("strongswan_guests: SKIP: qemu-system-x86_64 is not installed")
        return 77
    if os.geteuid() != 0 or shutil.which("tshark") is None:
        print("strongswan_guests: needs root and tshark")
        return 1
    record = Path(sys.argv[sys.argv.index("--record") + 1]) if "--record" in sys.argv else None
    work = Path(tempfile.mkdtemp(prefix="ss-guests-"))
    pcap = work / "bridge.pcap"
    t0 = time.time()
    try:
        rig("up", "--hub", "none", "--spokes", "2", "--ipsec", "psk", "--capture", str(pcap),
            "--timeout", "300", timeout=1500)
        print(f"strongswan_guests: guests up in {time.time() - t0:.0f} s", flush=True)
        for (g, nbma, tun), (_, peer, _) in ((A, B), (B, A)):
            r = guest_sh(g, f"ip tunnel add gre2 mode gre local {nbma} remote {peer} key 7 "
                            f"ttl 64 && ip addr add {tun}/24 dev gre2 && ip link set gre2 up")
            check(r.returncode == 0, f"{g}: gre2 {nbma} -> {peer} key 7, {tun}/24",
                  r.stdout + r.stderr)
        # The first GRE packet hits the trap policy; IKE then takes a few seconds (TCG, a
        # busy host): wait for the CHILD_SA, then every echo must come back.
        r = guest_sh(A[0], f"ping -n -c 1 -W 1 {B[2]}; for i in $(seq 120); do "
                           "swanctl --list-sas | grep -q INSTALLED && exit 0; sleep 0.5; "
                           "done; exit 1", timeout=90)
        check(r.returncode == 0, f"{A[0]}: GRE towards {B[1]} brought up a CHILD_SA (trap)",
              r.stdout + r.stderr)
        r = guest_sh(A[0], f"ping -n -c 12 -i 0.5 -W 3 {B[2]}", timeout=90)
        check("12 packets transmitted, 12 received" in r.stdout,
              f"{A[0]} pings {B[2]} across GRE in ESP, every echo answered",
              r.stdout + r.stderr)
        listing = {}
        for g in (A, B):
            out = guest_sh(g[0], "swanctl --list-sas --raw").stdout
            listing[g[0]] = raw_sas(out)
            ok = [(ike, ch) for ike, ch in listing[g[0]] if ike.get("state") == "ESTABLISHED"
                  and any(c.get("state") == "INSTALLED" and c.get("mode") == "TRANSPORT"
                          and c.get("protocol") == "ESP" and int(c.get("packets-in", 0)) > 0
                          and int(c.get("packets-out", 0)) > 0 for c in ch)]
            check(bool(ok), f"{g[0]}: IKE SA ESTABLISHED, CHILD_SA INSTALLED, TRANSPORT, ESP, "
                  "packets both ways", out)
            ts = [(c.get("local-ts"), c.get("remote-ts")) for _, ch in ok for c in ch]
            check((f"[{g[1]}/32[gre]]", f"[{(B if g is A else A)[1]}/32[gre]]") in ts,
                  f"{g[0]}: CHILD_SA selectors are the two NBMA addresses, protocol GRE ({ts})")
        xfrm = guest_sh(A[0], "ip xfrm state").stdout
        states = xfrm_states(xfrm)
        check(len(states) >= 2 and all("aead" in s or "enc" in s for s in states),
              f"{A[0]}: the kernel holds {len(states)} ESP states with their keys", xfrm)
        logs = {g[0]: (RUN / "guests" / g[0] / "logs" / "charon.log").read_text(errors="replace")
                for g in (A, B)}
        time.sleep(1)
        t_cut = time.time()   # the capture is checked (and recorded) up to here

        # Rekeys under traffic: the CHILD_SA, then the IKE SA, while spoke2 pings (the kernel
        # keeps the old SA until the new one carries traffic: no echo lost).
        before = listing[A[0]]
        conn = "dmvpn-" + B[0]   # the rig's trap connection and its child share the name
        r = guest_sh(A[0], f"ping -n -c 20 -i 0.3 -W 2 {B[2]} >/tmp/rk.out 2>&1 & "
                           f"sleep 1; swanctl --rekey --child {conn}; sleep 2; "
                           f"swanctl --rekey --ike {conn}; wait; cat /tmp/rk.out", timeout=90)
        check(re.search(r"20 packets transmitted, 20 received", r.stdout) is not None,
              "spoke2 pings across a CHILD_SA rekey and an IKE SA rekey without losing an echo",
              r.stdout + r.stderr)
        after = raw_sas(guest_sh(A[0], "swanctl --list-sas --raw").stdout)
        old_spi = {c.get("spi-in") for _, ch in before for c in ch}
        new_ok = [(ike, c) for ike, ch in after for c in ch
                  if ike.get("state") == "ESTABLISHED" and c.get("state") == "INSTALLED"
                  and c.get("spi-in") not in old_spi]
        old_ike = {ike["initiator-spi"] for ike, _ in before}
        check(bool(new_ok) and all(ike["initiator-spi"] not in old_ike for ike, _ in new_ok),
              "after the rekeys: a new IKE SA (new SPIs) with a new CHILD_SA (new ESP SPIs), "
              "INSTALLED", str(after))
        rig("down", timeout=120)
        cut = work / "cut.pcap"
        subprocess.run(["tshark", "-r", str(pcap), "-Y", f"frame.time_epoch <= {t_cut}",
                        "-w", str(cut), "-F", "pcap"], check=True, capture_output=True,
                       timeout=60)
        pcap = cut

        # The keys: IKE from the initiator's charon log, matched to SPIs by unique id.
        rows, keylines = [], [f"# {NAME}: strongSwan 5.9.8 in two Debian 12 qemu guests "
                                  "(kernel ESP), keys from charon (ike 4) and ip xfrm state"]
        for g in (A, B):
            keys = {k["ike"].split("|")[-1]: k for k in ss.ike_keys(logs[g[0]])}
            for ike, _ in listing[g[0]]:
                k = keys.get(ike["uniqueid"])
                if k is None:
                    continue
                row = ss.ikev2_decryption_table_row(
                    ike["initiator-spi"], ike["responder-spi"], k,
                    ss.wireshark_encr(ike["encr-alg"], ike["encr-keysize"]),
                    ss.wireshark_integ(ike.get("integ-alg", "")))
                if row not in rows:
                    rows.append(row)
                    keylines += ["", f"[IKE SA {ike['uniqueid']}]  ({g[0]}'s unique id)",
                                 f"SPIi = {ike['initiator-spi']}",
                                 f"SPIr = {ike['responder-spi']}",
                                 f"proposal = {ike['encr-alg']}_{ike['encr-keysize']}/"
                                 f"{ike['prf-alg']}/{ike['dh-group']}"]
                    keylines += [f"{n} = {k[n].hex()}" for n in
                                 ("g_ir", "SKEYSEED", "SK_d", "SK_ai", "SK_ar", "SK_ei", "SK_er",
                                  "SK_pi", "SK_pr") if n in k]
        check(len(rows) >= 1, f"IKE keys found for {len(rows)} IKE SA(s) in the guests' logs")
        # The nonces (for the key schedule check in strongswan_captures.py), from IKE_SA_INIT.
        cfg0 = work / "plain"
        cfg0.mkdir()
        for line in tshark(pcap, cfg0, "-Y", "isakmp.exchangetype == 34", "-T", "fields",
                           "-e", "isakmp.ispi", "-e", "isakmp.flag_r",
                           "-e", "isakmp.nonce").splitlines():
            spi, resp, nonce = (line.split("\t") + ["", "", ""])[:3]
            spi = spi.replace(":", "")
            for i, kl in enumerate(keylines):
                if kl == f"SPIi = {spi}":
                    keylines.insert(i + 3, f"{'Nr' if resp in ('1', 'True') else 'Ni'} = "
                                    f"{nonce.replace(':', '')}")
                    break
        esp_rows = [esp_sa_row(s) for s in states]
        keylines += ["", "[CHILD_SA ESP SAs] (ip xfrm state in spoke2; AES-GCM key || 4-byte salt)"]
        keylines += [f"{s['src']} -> {s['dst']} spi {s['spi']} key {s.get('aead') or s['enc']}"
                     for s in states]
        cfg = work / "wireshark"
        cfg.mkdir()
        table = "# This file is automatically generated, DO NOT MODIFY.\n" + "\n".join(rows) + "\n"
        esp_sa = "# This file is automatically generated, DO NOT MODIFY.\n" + \
            "\n".join(esp_rows) + "\n"
        (cfg / "ikev2_decryption_table").write_text(table)
        (cfg / "esp_sa").write_text(esp_sa)
        (cfg / "preferences").write_text("esp.enable_encryption_decode: TRUE\n"
                                         "esp.enable_authentication_check: TRUE\n")

        clear_gre = tshark(pcap, cfg, "-Y", "ip.proto == 47", "-T", "fields", "-e", "frame.number")
        check(clear_gre.strip() == "", "no GRE in clear on the bridge (all of it went as ESP)",
              clear_gre)
        auth = tshark(pcap, cfg, "-Y", "isakmp.exchangetype == 35 && isakmp.flag_r == 1",
                      "-T", "fields", "-e", "isakmp.typepayload", "-e", "isakmp.ts.protoid",
                      "-e", "isakmp.notify.msgtype", "-e", "isakmp.enc.icd")
        fields = auth.strip().split("\t") if auth.strip() else []
        check(len(fields) == 4 and {"33", "44", "45"} <= set(fields[0].split(","))
              and set(fields[1].split(",")) == {"47"} and "16391" in fields[2].split(","),
              "tshark decrypts the IKE_AUTH response: SA, TSi/TSr protocol 47, "
              "USE_TRANSPORT_MODE", auth)
        icd = tshark(pcap, cfg, "-Y", "isakmp.enc.icd", "-V")
        check("[correct]" in icd and "[incorrect" not in icd,
              "tshark verifies the IKE integrity checksums")
        esp = tshark(pcap, cfg, "-Y", "esp", "-T", "fields", "-e", "esp.spi", "-e", "gre.key",
                     "-e", "icmp.type", "-e", "ip.src", "-e", "ip.dst")
        inner = [f for f in (l.split("\t") for l in esp.splitlines())
                 if len(f) == 5 and f[1] in ("7", "0x00000007") and f[2] in ("0", "8")
                 and {A[2], B[2]} <= set(f[3].split(",") + f[4].split(","))]
        check(len(inner) >= 2 * 12,
              f"tshark decrypts the ESP: {len(inner)} of {len(esp.splitlines())} ESP packets "
              "hold GRE key 7 with the ICMP echo between the tunnel addresses", esp[:2000])
        if record:
            record.mkdir(parents=True, exist_ok=True)
            subprocess.run(["tshark", "-r", str(pcap), "-Y", "isakmp || esp || udpencap",
                            "-w", str(record / f"{NAME}.pcap"), "-F", "pcap"], check=True,
                           capture_output=True, timeout=60)
            (record / f"{NAME}.ikev2_decryption_table").write_text(table)
            (record / f"{NAME}.esp_sa").write_text(esp_sa)
            (record / f"{NAME}.keys.txt").write_text("\n".join(keylines) + "\n")
            print(f"strongswan_guests: recorded {NAME}.* in {record}")
    except AssertionError as e:
        check(False, str(e))
    finally:
        rig("down", timeout=120, ok=False)
        if check.failures:
            for c in sorted(RUN.glob("*.console")):
                print(f"----- {c} (end) -----\n" + c.read_text(errors="replace")[-3000:])
        shutil.rmtree(work, ignore_errors=True)
    print(f"strongswan_guests: {len(check.failures)} failure(s) in {time.time() - t0:.0f} s")
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
