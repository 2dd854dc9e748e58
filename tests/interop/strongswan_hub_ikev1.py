#!/usr/bin/python3
"""strongSwan keys SAs with our hub by IKEv1 (issue 11): build/dmvpn-hub on
config/examples/interop.yaml plus an IPsec profile with `ike: version: 1` (wildcard PSK,
ISAKMP policies as the seeds' `crypto isakmp policy`), its net_tap interface moved into a
strongSwan namespace (198.51.100.50/24), as strongswan_hub_ike.py does for IKEv2.

charon-systemd initiates with `version = 1` (Main Mode, PSK, then Quick Mode in transport mode
with GRE proxy identities) three times: the seeds' proposals, 3DES/MD5/MODP-1024 with
esp-3des esp-md5-hmac, then AES-128/SHA-1/MODP-1024 with PFS group 2 and an IPsec lifetime of
120 s, then a strong one (AES-256/SHA2-256/MODP-2048, PFS group 14), then Aggressive Mode
(`aggressive = yes`; the profile has `aggressive-mode: true`), then Main Mode with RSA
signatures (`auth = pubkey`, a test CA made with strongSwan's pki, the hub reloaded to
`authentication: certificate`: charon checks the hub's certificate, SIG_R and CR, the hub
charon's chain, identity and SIG_I). Asserts for each: charon
logs the ISAKMP SA established (it checked the hub's HASH_R or SIG_R), the hub shows it QM_IDLE
ACTIVE in
`show crypto isakmp sa` (and --json; `detail`: the transform, Auth psk / rsig, DH group,
lifetime left), the hub installed the ESP pair with charon's SPIs mirrored
and `show crypto ipsec sa` lists it; then `clear crypto sa` drops it (charon hears the DELETE).
Known answers: the SKEYID, SKEYID_d/a/e charon logs (`ike 4`) equal RFC 2409's derivation
from the nonces and cookies captured on the wire (tcpdump) and charon's g^xy, and the ESP keys
the hub writes to its key log (--key-log, esp_sa) are the ones charon logs (`chd 4`). This
container's kernel has no ESP, so
charon cannot install its side of the pair: the hub's side is what is checked. Needs root,
build/dmvpn-hub and Debian's strongSwan; exit 77 otherwise.
"""

import hashlib
import hmac
import json
import os
import re
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hubnet  # noqa: E402
import strongswan as ss  # noqa: E402

TAG = f"sv1{os.getpid() % 100000}"
HUB_NBMA, SS_ADDR = "198.51.100.1", "198.51.100.50"
PSK = "interop-psk-0123456789"

check = ss.Checks()
failures = check.failures

# (what, IKE proposal, ESP proposal (with the PFS group), extra child settings)
CASES = [
    ("seed: 3des-md5-modp1024, esp-3des esp-md5-hmac", "3des-md5-modp1024", "3des-md5", {}),
    ("seed: aes128-sha1-modp1024, PFS group 2, lifetime 120 s", "aes128-sha1-modp1024",
     "aes128-sha1-modp1024", {"rekey_time": "100s", "life_time": "120s"}),
    ("strong: aes256-sha256-modp2048, PFS group 14", "aes256-sha256-modp2048",
     "aes256-sha256-modp2048", {}),
    # Aggressive Mode (charon `aggressive = yes`), answered because the profile says
    # `aggressive-mode: true`.
    ("aggressive mode: aes128-sha1-modp2048", "aes128-sha1-modp2048", "aes128-sha1", {}),
    # RSA signatures (RFC 2409 section 5.1): the hub reloaded to `authentication: certificate`.
    ("certificates: RSA signatures, aes128-sha1-modp2048", "aes128-sha1-modp2048", "aes128-sha1",
     {}),
]
AGGRESSIVE = {"aggressive mode: aes128-sha1-modp2048"}
CERTIFICATES = {"certificates: RSA signatures, aes128-sha1-modp2048"}


def hub_config():
    text = hubnet.EXAMPLE.read_text()
    text = text.replace("    verify-source: true",
                        "    ipsec-profile: ikev1\n    verify-source: true")
    assert "ipsec-profile: ikev1" in text
    return text.replace("management:", f"""ipsec-profiles:
  - name: ikev1
    ike:
      version: 1
      authentication: psk
      psk: {PSK}
      dpd-interval: 0
      aggressive-mode: true
      isakmp-policies:
        - {{encryption: aes 256, hash: sha256, group: 14}}
        - {{encryption: aes, hash: sha, group: 14}}
        - {{encryption: aes, hash: sha, group: 2}}
        - {{encryption: 3des, hash: md5, group: 2}}
      esp-proposals: [aes256-sha256, aes128-sha1, 3des-md5]

management:""")


def cert_config(certs):
    """The profile keyed by RSA signatures: the hub's certificate and key, charon's CA; the
    ISAKMP policy IOS writes as `authentication rsa-sig` (Aggressive Mode is PSK only)."""
    hub_cert, hub_key = certs[HUB_NBMA]
    text = hub_config()
    start, end = text.index("      authentication: psk"), text.index("      esp-proposals:")
    return text[:start] + f"""      authentication: certificate
      certificate: {hub_cert}
      private-key: {hub_key}
      ca: [{certs["ca"]}]
      dpd-interval: 0
      isakmp-policies:
        - {{encryption: aes, hash: sha, group: 14, authentication: rsa-sig}}
""" + text[end:]


def s(v):
    return v.decode(errors="replace") if isinstance(v, bytes) else str(v)


def wait(pred, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    return pred()


def last_session(log, start):
    return log[start:]


def udp_payloads(pcap):
    """(src, sport, payload) of every UDP datagram in a classic pcap (Ethernet, IPv4)."""
    data = Path(pcap).read_bytes()
    out, off = [], 24
    while off + 16 <= len(data):
        caplen = struct.unpack_from("<I", data, off + 8)[0]
        frame = data[off + 16:off + 16 + caplen]
        off += 16 + caplen
        if len(frame) < 42 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
            continue
        ihl = (frame[14] & 0x0f) * 4
        src = ".".join(str(b) for b in frame[26:30])
        udp = frame[14 + ihl:]
        sport, dport = struct.unpack_from("!HH", udp, 0)
        payload = udp[8:]
        if 4500 in (sport, dport):
            if payload[:4] != bytes(4):
                continue  # ESP in UDP, or a NAT keepalive
            payload = payload[4:]  # the non-ESP marker (RFC 3948)
        out.append((src, sport, payload))
    return out


def isakmp_payloads(msg):
    """{payload type: [body]} of an unencrypted ISAKMP message."""
    out, nxt, off = {}, msg[16], 28
    while nxt and off + 4 <= len(msg):
        length = struct.unpack_from("!H", msg, off + 2)[0]
        out.setdefault(nxt, []).append(msg[off + 4:off + length])
        nxt, off = msg[off], off + length
    return out


def main_mode_nonces(pcap, cky_i):
    """Ni and Nr from the Main Mode exchange with initiator cookie `cky_i` (MM3, MM4)."""
    ni = nr = None
    for src, _, m in udp_payloads(pcap):
        if len(m) < 28 or m[:8] != cky_i or m[18] != 2 or m[19] & 1:
            continue
        p = isakmp_payloads(m)
        if 10 in p and 4 in p:
            if src == SS_ADDR:
                ni = p[10][0]
            else:
                nr = p[10][0]
    return ni, nr


def check_skeyid(what, log, pcap, hash_name, run, signatures=False):
    """RFC 2409 section 5 from what crossed the wire (nonces, cookies) and charon's g^xy equals
    the SKEYID, SKEYID_d/a/e charon logged at ike 4. `run`: which Main Mode of the capture this
    is (1, 2, ...): the capture holds the earlier ones too. `signatures`: SKEYID is
    prf(Ni_b | Nr_b, g^xy) (section 5.1), not prf(pre-shared key, Ni_b | Nr_b)."""
    dumps = {label: data for group, _, label, data in ss.log_dumps(log) if group == "IKE"}
    gxy, skeyid = dumps.get("shared Diffie Hellman secret"), dumps.get("SKEYID")
    # tcpdump may still be writing under load: give it a few seconds.
    # The hub's MM4s (Main Mode, clear, with a Nonce); tcpdump may still be writing under load.
    # Wait for this run's MM4, not just any: an earlier run's is already in the file.
    def mm4_cookies():
        c = []
        for src, _, m in udp_payloads(pcap):
            if (src == HUB_NBMA and len(m) >= 28 and m[18] == 2 and not m[19] & 1 and
                    10 in isakmp_payloads(m) and m[:16] not in c):
                c.append(m[:16])
        return c if len(c) >= run else None
    cookies = wait(mm4_cookies, 10)
    if not (gxy and skeyid and cookies):
        check(False, f"{what}: charon logged g^xy and SKEYID, the capture has Main Mode",
              str(sorted(dumps)))
        return
    ck = cookies[run - 1]
    ni, nr = main_mode_nonces(pcap, ck[:8])
    h = getattr(hashlib, hash_name)
    prf = lambda k, d: hmac.new(k, d, h).digest()  # noqa: E731
    nonces = (ni or b"") + (nr or b"")
    mine = prf(nonces, gxy) if signatures else prf(PSK.encode(), nonces)
    d = prf(mine, gxy + ck + b"\0")
    a = prf(mine, d + gxy + ck + b"\1")
    e = prf(mine, a + gxy + ck + b"\2")
    check(ni and nr and mine == skeyid and d == dumps.get("SKEYID_d") and
          a == dumps.get("SKEYID_a") and e == dumps.get("SKEYID_e"),
          f"{what}: SKEYID and SKEYID_d/a/e recomputed from the wire equal charon's "
          f"(SKEYID {skeyid.hex()[:16]}...)", str({k: v.hex() for k, v in dumps.items()}))


def check_esp_keys(what, log, keys_dir):
    """The hub's esp_sa rows (--key-log) hold exactly the ESP keys charon derived."""
    sets = ss.child_keys(log)
    rows = (keys_dir / "esp_sa").read_text().lower() if (keys_dir / "esp_sa").exists() else ""
    ok = bool(sets) and all(v.hex() in rows for k, v in sets[-1].items() if k != "ike")
    check(ok, f"{what}: the hub's ESP keys (key log) equal charon's (KEYMAT both ways)",
          str(sets[-1:]) + rows[-600:])


def main():
    why = ss.available()
    if why or not hubnet.HUB_BIN.exists():
        print(f"strongswan_hub_ikev1: SKIP: {why or 'needs build/dmvpn-hub'}")
        return 77
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.alarm(290)
    work = Path(tempfile.mkdtemp(prefix="ss-hub-ikev1-"))
    ns_hub = ns_ss = hub = charon = dump = None
    t0 = time.time()
    try:
        cfg = work / "hub.yaml"
        cfg.write_text(hub_config())
        ns_hub, ns_ss = ss.Netns(f"{TAG}-hub"), ss.Netns(f"{TAG}-ss")
        keys_dir = work / "keys"
        hub = hubnet.Hub(ns_hub.name, None, work / "hub", config=cfg, log_level="info",
                         extra_args=["--key-log", str(keys_dir)])
        hub.start()
        ss.hand_tap(hub, ns_hub, ns_ss, SS_ADDR)
        pcap = work / "ike.pcap"
        dump = subprocess.Popen(["ip", "netns", "exec", ns_ss.name, "tcpdump", "-n", "-U", "-i",
                                 hub.iface, "-w", str(pcap), "udp port 500 or udp port 4500"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # tcpdump writes the file's header once it captures.
        wait(lambda: pcap.exists() and pcap.stat().st_size >= 24, 10)
        time.sleep(0.5)
        charon = ss.Charon(ns_ss, work / "c", name="spoke")
        charon.start()
        installs = 0
        for n, (what, ike, esp, child) in enumerate(CASES, start=1):
            mark = len(charon.log())
            if what in CERTIFICATES:
                certs = ss.make_ca(work / "pki", "rsa", names=(HUB_NBMA, SS_ADDR))
                cfg.write_text(cert_config(certs))
                rc, text = hub.ctl("reload")
                check(rc == 0 and "applied" in text,
                      f"{what}: reload to authentication: certificate is applied", text)
                check(wait(lambda: hub.log().count("reload applied") >= 1, 5),
                      f"{what}: the IKE thread loaded the certificate, key and CA", hub.log())
                charon.load(ss.Conn(SS_ADDR, HUB_NBMA, auth="pubkey", local_id=SS_ADDR,
                                    remote_id=HUB_NBMA, cert=certs[SS_ADDR][0],
                                    key=certs[SS_ADDR][1], cacert=certs["ca"], send_cert="ifasked",
                                    proposals=ike, esp_proposals=esp, version=1,
                                    fragmentation="no", child_extra=child))
            else:
                charon.load(ss.Conn(SS_ADDR, HUB_NBMA, psk=PSK, proposals=ike, esp_proposals=esp,
                                    version=1, fragmentation="no", child_extra=child,
                                    extra={"aggressive": "yes"} if what in AGGRESSIVE else {}))
            # Under load the tap port may still be settling in its namespace: charon gives up
            # after its 3 retransmissions, and is asked again.
            log = None
            for _ in range(3):
                charon.initiate("dmvpn", "dmvpn", timeout=20, check=False)
                log = wait(lambda: "established between" in last_session(charon.log(), mark)
                           and last_session(charon.log(), mark), 20)
                if log:
                    break
            check(bool(log), f"{what}: charon established the ISAKMP SA (Main Mode, the hub's "
                  "HASH_R verified)", last_session(charon.log(), mark)[-4000:])
            if not log:
                continue
            isakmp = wait(lambda: "QM_IDLE" in hub.ctl("show", "crypto", "isakmp", "sa")[1] and
                          hub.ctl("show", "crypto", "isakmp", "sa")[1], 10)
            check(bool(isakmp) and re.search(rf"{HUB_NBMA}\s+{SS_ADDR}\s+QM_IDLE\s+\d+ ACTIVE",
                                             isakmp),
                  f"{what}: show crypto isakmp sa: {HUB_NBMA} {SS_ADDR} QM_IDLE ACTIVE",
                  str(isakmp))
            check(wait(lambda: hub.log().count(f"IKEv1 ISAKMP SA up: peer {SS_ADDR}") == n, 5),
                  f"{what}: the hub logged the ISAKMP SA up (peer_up: NHRP may register it)",
                  hub.log()[-2000:])
            rc, text = hub.ctl("show", "crypto", "isakmp", "sa", "--json")
            try:
                rows = json.loads(text)["isakmp_sas"]
            except (ValueError, KeyError):
                rows = []
            check(any(r["src"] == SS_ADDR and r["state"] == "QM_IDLE" for r in rows),
                  f"{what}: show crypto isakmp sa --json", text)
            # show crypto isakmp sa detail (IOS's layout): the transform, Auth and DH group of
            # the SA charon negotiated, the lifetime left as hh:mm:ss.
            encr, hsh, grp = ike.split("-")
            auth = "rsig" if what in CERTIFICATES else "psk"
            row = (rf"^\d+\s+{re.escape(HUB_NBMA)}\s+{re.escape(SS_ADDR)}\s+ACTIVE "
                   rf"{'aes' if encr.startswith('aes') else '3des'}\s+"
                   rf"{ {'md5': 'md5', 'sha1': 'sha', 'sha256': 'sha256'}[hsh]}\s+{auth}\s+"
                   rf"{ {'modp1024': 2, 'modp1536': 5, 'modp2048': 14}[grp]}\s+"
                   r"\d\d:[0-5]\d:[0-5]\d\b")
            rc, detail = hub.ctl("show", "crypto", "isakmp", "sa", "detail")
            check(rc == 0 and re.search(row, detail, re.M) is not None,
                  f"{what}: show crypto isakmp sa detail: {encr} {hsh} {auth} {grp}", detail)
            check(any(r["src"] == SS_ADDR and r.get("auth") == auth for r in rows),
                  f"{what}: show crypto isakmp sa --json: auth {auth}", text)
            # Quick Mode: the hub installs the pair before its QM2 leaves.
            installs += 1
            spis = wait(lambda: re.findall(r"adding (inbound|outbound) ESP SA\n.*?SPI "
                                           r"0x([0-9a-f]{8})", last_session(charon.log(), mark)),
                        10)
            ins = [int(v, 16) for d, v in spis or [] if d == "inbound"]
            outs = [int(v, 16) for d, v in spis or [] if d == "outbound"]
            line = (f"IPsec SA up: profile ikev1 peer {SS_ADDR} spi in 0x{outs[0]:08x} out "
                    f"0x{ins[0]:08x}" if ins and outs else "?")
            check(ins and outs and wait(lambda: line in hub.log(), 5),
                  f"{what}: the hub installed the ESP pair with charon's SPIs mirrored ({line})",
                  hub.log()[-3000:] + last_session(charon.log(), mark)[-3000:])
            spi_text = f"spi: 0x{outs[0]:08X}" if outs else "?"
            ipsec = wait(lambda: spi_text in hub.ctl("show", "crypto", "ipsec", "sa")[1] and
                         hub.ctl("show", "crypto", "ipsec", "sa")[1], 10)
            check(bool(ipsec) and ins and f"spi: 0x{outs[0]:08X}" in ipsec,
                  f"{what}: show crypto ipsec sa lists the pair", str(ipsec))
            # Known answers: the SKEYIDs charon derived are RFC 2409's from what crossed the
            # wire (the hub checked charon's HASH_I with its own SKEYID, and charon the hub's
            # HASH_R); the ESP keys the hub installed are the ones charon derived.
            sess = last_session(charon.log(), mark)
            if what in AGGRESSIVE:
                # On the wire: charon's AM1 and the hub's AM2 (exchange type 4, ISAKMP 1.0);
                # tcpdump hands packets over within its buffer timeout.
                def aggressive_seen():
                    am = [(src, p) for src, _, p in udp_payloads(pcap)
                          if len(p) >= 28 and p[17] == 0x10 and p[18] == 4]
                    return (any(src == SS_ADDR for src, _ in am) and
                            any(src == HUB_NBMA and p[8:16] != bytes(8) for src, p in am))
                check(wait(aggressive_seen, 5),
                      f"{what}: Aggressive Mode on the wire (AM1 from charon, AM2 from the hub)",
                      "\n".join(x for x in sess.splitlines() if "ggressive" in x))
            if what in CERTIFICATES:
                # charon sends its certificate only when asked: the hub's CR named the CA.
                check(re.search(r"received cert request for .*CN=dmvpn interop test CA", sess),
                      f"{what}: charon received the hub's CR naming the CA",
                      "\n".join(x for x in sess.splitlines() if "cert" in x))
                check(re.search(r"sending end entity cert .*CN=" + re.escape(SS_ADDR), sess),
                      f"{what}: charon sent its certificate (asked for by the CR)",
                      "\n".join(x for x in sess.splitlines() if "cert" in x))
                check(re.search(rf"authentication of '{re.escape(HUB_NBMA)}' with RSA\S* "
                                r"successful", sess),
                      f"{what}: charon verified the hub's certificate chain and SIG_R",
                      "\n".join(x for x in sess.splitlines() if "auth" in x))
            if what not in AGGRESSIVE:  # check_skeyid reads Main Mode's messages
                main_modes = sum(1 for c in CASES[:n] if c[0] not in AGGRESSIVE)
                check_skeyid(what, sess, pcap, {"md5": "md5", "sha1": "sha1",
                                                "sha256": "sha256"}[ike.split("-")[1]],
                             main_modes, signatures=what in CERTIFICATES)
            check_esp_keys(what, sess, keys_dir)
            rc, text = hub.ctl("clear", "crypto", "sa")
            check(rc == 0, f"{what}: clear crypto sa", text)
            gone = wait(lambda: not any(s(x.get("state")) == "ESTABLISHED"
                                        for x in charon.sas().values()), 10)
            check(gone, f"{what}: charon dropped the ISAKMP SA on the hub's DELETE",
                  str(charon.sas()))
            check(wait(lambda: "QM_IDLE" not in hub.ctl("show", "crypto", "isakmp", "sa")[1], 3),
                  f"{what}: the hub forgot the ISAKMP SA")
        ctl = hub.ctl_json("show", "stats")["control"]
        check(ctl["ike_child_installs"] == installs and ctl["ike_child_install_failed"] == 0,
              f"{installs} ESP pairs installed by the hub, none refused", str(ctl))
        check(hub.alive(), "the hub keeps running")
    except AssertionError as e:
        check(False, str(e))
    finally:
        if dump:
            dump.terminate()
            dump.wait()
        ss.tear_down(check, hub, charon, (ns_ss, ns_hub), work, hub_log_tail=6000,
                     charon_log_tail=12000)
    print(f"strongswan_hub_ikev1: {len(failures)} failure(s) in {time.time() - t0:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
