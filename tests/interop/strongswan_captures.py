#!/usr/bin/python3
"""The strongSwan IKEv2 captures and their keys (tests/data/captures/strongswan/), checked:

1. Key schedule: for every IKE SA in NAME.keys.txt, SKEYSEED and SK_d/ai/ar/ei/er/pi/pr
   recomputed with Python's hmac (RFC 7296 2.14; 2.18 for an IKE SA made by a rekey, from the
   old SA's SK_d) from g^ir, the nonces and the SPIs equal what charon logged; the nonces and
   SPIs in keys.txt are the ones in the capture.
2. Decryption: tshark with NAME.ikev2_decryption_table decrypts every encrypted IKE message
   (each Encrypted / Encrypted Fragment payload's integrity checksum "[correct]", decrypted
   payloads present), IKE_AUTH carries IDi/IDr and AUTH, and with one key byte changed tshark
   reports the checksum incorrect (the check is not vacuous).
3. What the captures are said to show: transport-mode GRE selectors (USE_TRANSPORT_MODE,
   TS protocol 47) in the CHILD_SA cases, RFC 7383 fragments in the fragmented one, DELETE and
   a rekey in dpd-rekey-delete, a NAT keepalive and UDP 4500 in the NAT-T one.
4. Live (root, Debian's strongSwan, tcpdump, nft): scripts/interop/capture-strongswan records
   the same cases afresh into a temporary folder with tests/interop/strongswan.py (two or three
   charons in network namespaces), and 1-3 hold for those too; only with
   DMVPN_STRONGSWAN_LIVE=1 (meson test interop_strongswan_live).

Exit 77 (skip) only when tshark is missing.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import strongswan as ss  # noqa: E402

SOURCE = HERE.parents[1]
CAPTURES = Path(os.environ.get("DMVPN_TESTDATA", SOURCE / "tests" / "data")) / "captures" / \
    "strongswan"
CAPTURE_SCRIPT = SOURCE / "scripts" / "interop" / "capture-strongswan"
EXPECTED = 8   # scripts/interop/capture-strongswan's cases
check = ss.Checks()
failures = check.failures


def parse_keys(path):
    """[{"uid", "SPIi", "SPIr", "proposal", "Ni", "Nr", "rekey", "g_ir", "SKEYSEED", "SK_*"}]"""
    sas = []
    for line in path.read_text().splitlines():
        if line.startswith("# The lines charon logged"):
            break
        if line.startswith("[IKE SA "):
            sas.append({"uid": line.split()[2].rstrip("]"), "rekey": False})
            continue
        if line.startswith("[CHILD_SA"):
            sas.append(None)   # ends the IKE SA block
            continue
        if not sas or sas[-1] is None or " = " not in line:
            continue
        key, val = line.split(" = ", 1)
        if key in ("Ni",) and "CREATE_CHILD_SA" in val:
            sas[-1]["rekey"] = True
        sas[-1][key] = val.split()[0] if key not in ("proposal", "local") else val
    return [s for s in sas if s]


def key_lengths(sa):
    return {k: len(bytes.fromhex(sa[k])) for k in ("SK_d", "SK_ai", "SK_ar", "SK_ei", "SK_er",
                                                     "SK_pi", "SK_pr") if k in sa}


def check_key_schedule(name, sas):
    prev = None
    for sa in sas:
        prf = sa["proposal"].split("/")[-2]
        got = ss.ike_key_schedule(
            prf, bytes.fromhex(sa["g_ir"]), bytes.fromhex(sa["Ni"]), bytes.fromhex(sa["Nr"]),
            bytes.fromhex(sa["SPIi"]), bytes.fromhex(sa["SPIr"]), key_lengths(sa),
            sk_d_old=bytes.fromhex(prev["SK_d"]) if sa["rekey"] else None)
        bad = [k for k, v in got.items() if v.hex() != sa[k]]
        check(not bad, f"{name}: IKE SA {sa['uid']} ({prf}{', rekeyed' if sa['rekey'] else ''})"
              f": SKEYSEED and {len(got) - 1} SK_* recomputed equal charon's"
              + (f" (differ: {bad})" if bad else ""))
        prev = sa


def tshark_pdml(pcap, table_text):
    with tempfile.TemporaryDirectory() as cfg:
        Path(cfg, "ikev2_decryption_table").write_text(table_text)
        r = subprocess.run(["tshark", "-n", "-r", str(pcap), "-T", "pdml"], capture_output=True,
                           text=True, timeout=120, env=dict(os.environ, WIRESHARK_CONFIG_DIR=cfg))
    if r.returncode != 0:
        raise AssertionError(f"tshark -r {pcap}: {r.stderr}")
    return ET.fromstring(r.stdout)


def isakmp_messages(root):
    """Per packet with IKE: {"frame", "exch", "flags", "ispi", "payloads" (all types, inner
    too), "icd" (shownames), "decrypted" (count), "fields" {name: [show]}}"""
    out = []
    for pkt in root.iter("packet"):
        frame = pkt.find("proto[@name='frame']/field[@name='frame.number']").get("show")
        for proto in pkt.findall("proto[@name='isakmp']"):
            fields = {}
            for f in proto.iter("field"):
                fields.setdefault(f.get("name"), []).append(f.get("show") or f.get("showname"))
            icd = [f.get("showname") for f in proto.iter("field")
                   if f.get("name") == "isakmp.enc.icd"]
            out.append({"frame": int(frame), "exch": fields.get("isakmp.exchangetype", [""])[0],
                        "flags": fields.get("isakmp.flags", ["0"])[0],
                        "payloads": fields.get("isakmp.typepayload", []), "icd": icd,
                        "decrypted": len(fields.get("isakmp.enc.decrypted", [])),
                        "fields": fields})
        if pkt.find("proto[@name='udpencap']") is not None and \
                pkt.find("proto[@name='isakmp']") is None:
            out.append({"frame": int(frame), "exch": "keepalive", "flags": "0", "payloads": [],
                        "icd": [], "decrypted": 0, "fields": {}})
    return out


def is_response(m):
    return bool(int(m["flags"], 16) & 0x20)


def check_capture(base, name):
    pcap = base / f"{name}.pcap"
    table = (base / f"{name}.ikev2_decryption_table").read_text()
    sas = parse_keys(base / f"{name}.keys.txt")
    check(len(sas) >= 1, f"{name}: keys.txt names {len(sas)} IKE SA(s)")
    check_key_schedule(name, sas)

    msgs = isakmp_messages(tshark_pdml(pcap, table))
    ike = [m for m in msgs if m["exch"] not in ("", "keepalive")]
    # Nonces and SPIs in keys.txt are those on the wire.
    init = [m for m in ike if m["exch"] == "34"]
    wire_nonces = {n.replace(":", "") for m in msgs for n in m["fields"].get("isakmp.nonce", [])}
    wire_spis = {s.replace(":", "") for m in ike for s in m["fields"].get("isakmp.ispi", [])
                 + m["fields"].get("isakmp.rspi", []) + m["fields"].get("isakmp.spi", [])}
    for sa in sas:
        check(sa["Ni"] in wire_nonces and sa["Nr"] in wire_nonces,
              f"{name}: IKE SA {sa['uid']}: Ni and Nr are nonces of the capture")
        check(sa["SPIi"] in wire_spis and sa["SPIr"] in wire_spis,
              f"{name}: IKE SA {sa['uid']}: SPIs {sa['SPIi']}/{sa['SPIr']} are in the capture")
    check(len(init) == 2, f"{name}: one IKE_SA_INIT request and response ({len(init)})")
    encrypted = [m for m in ike if m["exch"] != "34"]
    all_icd = [s for m in encrypted for s in m["icd"]]
    check(encrypted and all(m["icd"] for m in encrypted),
          f"{name}: every one of {len(encrypted)} encrypted messages has an integrity checksum")
    check(all_icd and all(s.endswith("[correct]") for s in all_icd),
          f"{name}: tshark verifies all {len(all_icd)} integrity checksums")
    check(all(m["decrypted"] for m in encrypted), f"{name}: tshark decrypts every encrypted "
          "message (or fragment)")
    auth = [m for m in encrypted if m["exch"] == "35" and "39" in m["payloads"]]
    req = [m for m in auth if "35" in m["payloads"] and not is_response(m)]
    resp = [m for m in auth if "36" in m["payloads"] and is_response(m)]
    check(len(req) >= 1 and len(resp) >= 1,   # more than one: retransmitted (a busy host)
          f"{name}: IKE_AUTH decrypted: request with IDi + AUTH, response with IDr + AUTH")

    # The same with one byte of the first IKE SA's SK_ei/er (AEAD: the tag depends on them)
    # or SK_ai/ar changed: none of its messages verifies any more.
    first = table.splitlines()[1].split(",")
    for k in ((2, 3) if first[5] == "" else (5, 6)):
        first[k] = ("0" if first[k][0] != "0" else "1") + first[k][1:]
    bad_table = table.splitlines()[0] + "\n" + ",".join(first) + "\n" + \
        "\n".join(table.splitlines()[2:]) + "\n"
    bad = isakmp_messages(tshark_pdml(pcap, bad_table))
    first_sa = (sas[0]["SPIi"], sas[0]["SPIr"])
    bad_first = [m for m in bad if m["exch"] not in ("", "34", "keepalive")
                 and tuple(v.replace(":", "") for v in (m["fields"]["isakmp.ispi"][0],
                                                        m["fields"]["isakmp.rspi"][0]))
                 == first_sa]
    check(bad_first and not any(s.endswith("[correct]") for m in bad_first for s in m["icd"]),
          f"{name}: with one key byte changed tshark verifies none of the first IKE SA's "
          f"{len(bad_first)} messages")
    return msgs, ike, auth


def check_claims(name, msgs, ike, auth):
    payloads_of = lambda ms: {p for m in ms for p in m["payloads"]}
    fields_of = lambda ms, f: [v for m in ms for v in m["fields"].get(f, [])]
    if "-guests-" in name:
        req = [m for m in auth if not is_response(m)]
        resp = [m for m in auth if is_response(m)]
        check({"33", "44", "45"} <= payloads_of(resp)
              and set(fields_of(req + resp, "isakmp.ts.protoid")) == {"47"}
              and "16391" in fields_of(resp, "isakmp.notify.msgtype"),
              f"{name}: the CHILD_SA was accepted: IKE_AUTH response with SA, TSi/TSr "
              "protocol 47, USE_TRANSPORT_MODE")
    elif "childless" not in name and "dpd-rekey-delete" not in name:
        req = [m for m in auth if not is_response(m)]
        notes = fields_of(req, "isakmp.notify.msgtype")
        protos = fields_of(req, "isakmp.ts.protoid")
        check("16391" in notes and protos and set(protos) == {"47"},
              f"{name}: IKE_AUTH asks for a transport-mode CHILD_SA with GRE selectors "
              f"(USE_TRANSPORT_MODE, TS protocols {protos})")
        resp_notes = fields_of([m for m in auth if is_response(m)], "isakmp.notify.msgtype")
        check("14" in resp_notes, f"{name}: the responder (no ESP in this kernel) answers the "
              "CHILD_SA with NO_PROPOSAL_CHOSEN")
    else:
        check(not ({"33", "44", "45"} & payloads_of(auth)),
              f"{name}: IKE_AUTH carries no SA/TSi/TSr (childless)")
    if "fragmented" in name:
        frags = [m for m in ike if "53" in m["payloads"]]
        check(len(frags) >= 4, f"{name}: IKE_AUTH request and response in RFC 7383 fragments "
              f"({len(frags)} Encrypted Fragment payloads)")
    if "cert" in name:
        check("37" in payloads_of(auth) and "38" in payloads_of(ike),
              f"{name}: CERT and CERTREQ payloads")
    if "rekey" in name:
        ccsa = [m for m in ike if m["exch"] == "36"]
        check(len(ccsa) == 2 and all("34" in m["payloads"] and "33" in m["payloads"]
                                     for m in ccsa),
              f"{name}: CREATE_CHILD_SA request and response with SA and KE (IKE SA rekey)")
        dels = [m for m in ike if m["exch"] == "37" and "42" in m["payloads"]]
        check(len(dels) == 2, f"{name}: two DELETEs (the old IKE SA, then the new one)")
        dpd = [m for m in ike if m["exch"] == "37" and m["payloads"] == ["46"]]
        check(len(dpd) >= 4, f"{name}: empty INFORMATIONAL exchanges (DPD) on both IKE SAs")
    if "natt" in name:
        check(any(m["exch"] == "keepalive" for m in msgs), f"{name}: a NAT keepalive")
        nat = fields_of([m for m in ike if m["exch"] == "34"], "isakmp.notify.msgtype")
        check("16388" in nat and "16389" in nat, f"{name}: NAT_DETECTION_* notifies")


def esp_decrypts(pcap, esp_sa):
    """(ESP packets, of which decrypted: GRE inside) with `esp_sa` as tshark's esp_sa table."""
    with tempfile.TemporaryDirectory() as cfg:
        Path(cfg, "esp_sa").write_text(esp_sa)
        Path(cfg, "preferences").write_text("esp.enable_encryption_decode: TRUE\n"
                                            "esp.enable_authentication_check: TRUE\n")
        r = subprocess.run(["tshark", "-n", "-r", str(pcap), "-Y", "esp", "-T", "fields",
                            "-e", "esp.spi", "-e", "gre.key", "-e", "esp.icv_good"],
                           capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, WIRESHARK_CONFIG_DIR=cfg))
    lines = [l.split("\t") for l in r.stdout.splitlines()]
    # Decrypted: GRE inside and the AES-GCM tag verified (a wrong key can still yield bytes
    # that happen to dissect as GRE; it cannot yield a good tag).
    return len(lines), sum(1 for f in lines if len(f) > 2 and f[1] and f[2] in ("1", "True"))


def check_esp(base, name):
    """NAME.esp_sa (captures from the qemu guests, whose kernels have ESP): tshark decrypts
    every ESP packet to GRE, and with one key byte changed none."""
    path = base / f"{name}.esp_sa"
    if not path.exists():
        return
    text = path.read_text()
    n, ok = esp_decrypts(base / f"{name}.pcap", text)
    check(n > 0 and ok == n, f"{name}: tshark decrypts all {n} ESP packets to GRE, ICV good "
          f"({ok})")
    bad = []
    for line in text.splitlines():   # the 6th field is the encryption key, "0x..."
        f = line.split(",")
        if not line.startswith("#") and len(f) >= 6 and f[5].startswith('"0x'):
            f[5] = '"0x' + ("1" if f[5][3] == "0" else "0") + f[5][4:]
        bad.append(",".join(f))
    bad = "\n".join(bad) + "\n"
    n, ok = esp_decrypts(base / f"{name}.pcap", bad)
    check(ok == 0, f"{name}: with the ESP keys changed tshark decrypts none ({ok} of {n})")


def check_folder(base, label, expected):
    # IKEv2 captures only: the IKEv1 guests' capture (ikev1_decryption_table) is checked by
    # tests/interop/hub_frr_ikev1.py.
    names = sorted(p.name[:-len(".pcap")] for p in base.glob("*.pcap") if "-ikev1-" not in p.name)
    check(len(names) == expected, f"{label}: {len(names)} captures (expected {expected})")
    for name in names:
        msgs, ike, auth = check_capture(base, name)
        check_claims(name, msgs, ike, auth)
        check_esp(base, name)


def main():
    if shutil.which("tshark") is None:
        print("SKIP: tshark is not installed (scripts/setup installs it)")
        sys.exit(77)
    check_folder(CAPTURES, "committed captures", EXPECTED + 1)   # + the guests' capture
    why = ss.available()
    if os.environ.get("DMVPN_STRONGSWAN_LIVE") != "1":
        print("note: live recording not asked for (DMVPN_STRONGSWAN_LIVE=1 does it)")
    elif why:
        check(False, f"live recording with strongSwan: {why}")
    else:
        with tempfile.TemporaryDirectory(prefix="strongswan-live.") as out:
            r = subprocess.run([str(CAPTURE_SCRIPT), out], capture_output=True, text=True,
                               timeout=600)
            print(r.stdout[-4000:], r.stderr[-4000:])
            if check(r.returncode == 0, "live: capture-strongswan recorded every case"):
                check_folder(Path(out), "live captures", EXPECTED)
    if failures:
        print(f"{len(failures)} check(s) failed")
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
