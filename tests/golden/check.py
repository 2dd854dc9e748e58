"""Compares what the dataplane produced (out_lan.pcap, out_underlay.pcap, punts.txt, written by
tests/unit/dataplane_golden_test.cpp) with what tests/golden/scenario.py expects, and has tshark
decrypt the hub's ESP with the configured keys.

`python3 check.py DIR`: prints every difference and exits 1 if there is any.

How packets are compared:
- Outputs are paired with expectations by the tag in their innermost IPv4 ID and fragment
  offset (after decrypting ESP): the hub regroups a burst by path (ESP, GRE, plain IP), so output
  order is not input order. Both sides must hold the same tags, each once.
- LAN frames: every byte (Ethernet, the forwarded IPv4 packet with its TTL and checksum).
- Plain GRE frames: every byte except the outer IPv4 identification and header checksum. The ID
  is the hub's choice (RFC 6864: any value for atomic datagrams), so the checksum that covers it
  differs too; the produced checksum is verified instead.
- ESP frames: the Ethernet header, the outer IPv4 header except ID, total length and checksum
  (checksum verified), the SPI, then the decrypted payload (GRE + inner packet) byte for byte.
  The IV is the hub's (for CBC an unpredictable one, RFC 3602 2.1) and the padding length its
  choice within RFC 4303 2.4, so the ciphertext and length cannot be compared; each IV must
  differ from every other of its SA. Sequence numbers of an SA must be exactly 1..n, each once.
- Punts: every field and every byte, as a multiset.
- Fragments: tshark (ESP decrypted) reassembles every datagram of expect_reassembled.txt from
  the frames the hub sent, to exactly the original payload.
"""

import collections
import os
import subprocess
import sys

# scenario.py is imported for its keys and addresses; no __pycache__ in the source tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from scapy.all import GRE, IP, rdpcap  # noqa: E402
from scapy.layers.ipsec import ESP  # noqa: E402

import scenario  # noqa: E402

HUB_OUT_SAS = {sp.sa_out.spi: (sp, sp.sa_out) for sp in scenario.IPSEC_SPOKES}

errors = []


def fail(msg):
    errors.append(msg)


def checksum_ok(ip):
    """The IPv4 header checksum as received equals the one scapy computes."""
    fresh = IP(bytes(ip))
    stored = fresh.chksum
    del fresh.chksum
    return IP(bytes(fresh)).chksum == stored


def field_diff(a, b, what):
    """Names the first differing fields of two scapy packets, layer by layer."""
    out = []
    la, lb = a, b
    while la is not None and lb is not None and la.name == lb.name:
        for f in la.fields_desc:
            va, vb = la.getfieldval(f.name), lb.getfieldval(f.name)
            if va != vb:
                out.append(f"{la.name}.{f.name}: got {va!r}, want {vb!r}")
        la = la.payload if la.payload else None
        lb = lb.payload if lb.payload else None
        if la is not None and la.name in ("Raw", "Padding"):
            if lb is None or bytes(la) != bytes(lb):
                out.append(f"payload: got {bytes(la).hex()}, want "
                           f"{bytes(lb).hex() if lb is not None else None}")
            break
    if not out:
        out.append(f"layers differ: got {a.summary()}, want {b.summary()}")
    return f"{what}: " + "; ".join(out[:6])


def masked_outer(ip, keep_len):
    """Outer IPv4 header bytes with the fields the hub chooses (ID, checksum, and for ESP the
    total length) zeroed."""
    h = bytearray(bytes(ip)[:ip.ihl * 4])
    h[4:6] = b"\0\0"
    h[10:12] = b"\0\0"
    if not keep_len:
        h[2:4] = b"\0\0"
    return bytes(h)


def tag_of(ip):
    """An IPv4 packet's tag: its ID and fragment offset (fragments of a datagram share the ID)."""
    return (ip.id, ip.frag)


def innermost_id(ip):
    """The tag of the IPv4 packet inside GRE."""
    if GRE not in ip or IP not in ip[GRE]:
        return None
    return tag_of(ip[GRE][IP])


class Opened:
    """One output frame made comparable: tag, Ethernet header, outer header, what follows."""

    def __init__(self, frame, number, what):
        self.frame = frame
        self.number = number  # frame number in its capture, from 1 (tshark's frame.number)
        self.what = what
        self.eth = bytes(frame)[:14]
        self.ip = frame[IP]
        self.spi = None
        self.seq = None
        self.iv = None
        self.plain = self.ip  # the outer IPv4 packet with GRE inside (decrypted if ESP)
        if self.ip.proto == 50:
            esp = self.ip[ESP]
            self.spi, self.seq = esp.spi, esp.seq
            if esp.spi not in HUB_OUT_SAS:
                raise ValueError(f"{what}: ESP with an SPI the hub has no outbound SA for: "
                                 f"0x{esp.spi:x}")
            sa = HUB_OUT_SAS[esp.spi][1]
            ivlen = sa.iv_len()
            self.iv = bytes(esp.data)[:ivlen]
            try:
                self.plain = sa.scapy_sa().decrypt(IP(bytes(self.ip)))
            except Exception as e:  # scapy's integrity and padding errors
                raise ValueError(f"{what}: does not decrypt with SA 0x{esp.spi:x}: {e!r}")
        self.tag = innermost_id(self.plain) if self.plain.proto == 47 else tag_of(self.plain)


def opened_all(frames, name):
    out = []
    for i, p in enumerate(frames):
        try:
            out.append(Opened(p, i + 1, f"{name} #{i + 1}"))
        except ValueError as e:
            fail(str(e))
    return out


def compare_lan(got, want):
    gb, wb = bytes(got), bytes(want)
    if gb != wb:
        fail(field_diff(got, want, f"LAN frame tag {want[IP].id}"))


def compare_underlay(got, want):
    what = f"underlay frame tag {want.tag}"
    if got.eth != want.eth:
        fail(f"{what}: Ethernet header {got.eth.hex()}, want {want.eth.hex()}")
    if not checksum_ok(got.ip):
        fail(f"{what}: outer IPv4 header checksum wrong")
    esp = want.spi is not None
    if masked_outer(got.ip, not esp) != masked_outer(want.ip, not esp):
        fail(field_diff(got.ip, want.ip, what + " (outer IPv4, ID/checksum masked)"))
    if got.spi != want.spi:
        fail(f"{what}: SPI {got.spi}, want {want.spi}")
        return
    # GRE and the inner packet, decrypted where ESP.
    g, w = got.plain[GRE], want.plain[GRE]
    if bytes(g) != bytes(w):
        fail(field_diff(g, w, what + " (GRE and inner packet)"))
    if esp and got.plain.len != len(bytes(got.plain)):
        fail(f"{what}: decrypted total length {got.plain.len}")


def compare_frames():
    d = sys.argv[1]

    def load(name):
        return list(rdpcap(os.path.join(d, name)))

    # LAN: tag = the IPv4 ID of the forwarded packet itself.
    got_lan = {tag_of(p[IP]): p for p in load("out_lan.pcap")}
    want_lan = {tag_of(p[IP]): p for p in load("expect_lan.pcap")}
    if len(got_lan) != len(load("out_lan.pcap")):
        fail("LAN: two output frames carry the same tag")
    for t in sorted(set(got_lan) | set(want_lan)):
        if t not in want_lan:
            fail(f"LAN: unexpected frame {got_lan[t].summary()}")
        elif t not in got_lan:
            fail(f"LAN: missing frame {want_lan[t].summary()}")
        else:
            compare_lan(got_lan[t], want_lan[t])

    got_und = opened_all(load("out_underlay.pcap"), "out_underlay")
    want_und = opened_all(load("expect_underlay.pcap"), "expect_underlay")
    got_by = {o.tag: o for o in got_und}
    want_by = {o.tag: o for o in want_und}
    if len(got_by) != len(got_und):
        fail("underlay: two output frames carry the same tag")
    for t in sorted(set(got_by) | set(want_by), key=lambda x: (x is None, x)):
        if t not in want_by:
            fail(f"underlay: unexpected frame {got_by[t].frame.summary()}")
        elif t not in got_by:
            fail(f"underlay: missing frame {want_by[t].frame.summary()}")
        else:
            compare_underlay(got_by[t], want_by[t])

    # Per SA: sequence numbers 1..n each once, IVs all different.
    seqs = collections.defaultdict(list)
    ivs = collections.defaultdict(set)
    for o in got_und:
        if o.spi is not None:
            seqs[o.spi].append(o.seq)
            if o.iv in ivs[o.spi]:
                fail(f"SA 0x{o.spi:x}: IV {o.iv.hex()} used twice")
            ivs[o.spi].add(o.iv)
    want_counts = collections.Counter(o.spi for o in want_und if o.spi is not None)
    for spi, n in want_counts.items():
        if sorted(seqs[spi]) != list(range(1, n + 1)):
            fail(f"SA 0x{spi:x}: sequence numbers {sorted(seqs[spi])}, want 1..{n}")
    return got_und


def compare_punts():
    d = sys.argv[1]
    with open(os.path.join(d, "punts.txt")) as f:
        got = collections.Counter(line.strip() for line in f if line.strip())
    with open(os.path.join(d, "expect_punts.txt")) as f:
        want = collections.Counter(line.strip() for line in f if line.strip())
    for line in sorted((got - want).elements()):
        fail(f"punt not expected: {line}")
    for line in sorted((want - got).elements()):
        fail(f"punt missing: {line}")


def tshark_args(capture):
    """tshark reading one of the hub's captures, decrypting ESP with esp_sa.uat's keys and
    checking every IPv4, UDP and TCP checksum."""
    d = sys.argv[1]
    args = ["tshark", "-r", os.path.join(d, capture),
            "-o", "esp.enable_encryption_decode:TRUE",
            "-o", "esp.enable_authentication_check:TRUE",
            "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
            "-o", "tcp.check_checksum:TRUE"]
    with open(os.path.join(d, "esp_sa.uat")) as f:
        for line in f:
            if line.strip():
                args += ["-o", "uat:esp_sa:" + line.strip()]
    return args


def tshark_esp(got_und):
    """tshark decrypts every ESP frame the hub sent with the keys of esp_sa.uat, verifies the
    ICV, and finds valid GRE with the tunnel's key and a valid inner IPv4 packet inside."""
    args = tshark_args("out_underlay.pcap")
    fields = ["frame.number", "esp.spi", "esp.icv_good", "gre.key", "ip.dst",
              "ip.checksum.status", "udp.checksum.status", "_ws.malformed", "frame.protocols"]
    args += ["-T", "fields", "-E", "occurrence=a", "-E", "separator=|"]
    for f in fields:
        args += ["-e", f]
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"tshark failed: {r.stderr}")
        return
    rows = [dict(zip(fields, line.split("|"))) for line in r.stdout.splitlines() if line]
    by_number = {row["frame.number"]: row for row in rows}
    n_esp = 0
    for o in got_und:
        if o.spi is None:
            continue
        row = by_number.get(str(o.number))
        if row is None:
            fail(f"tshark did not read frame {o.number}")
            continue
        n_esp += 1
        what = f"tshark frame {row['frame.number']} (SPI 0x{o.spi:x})"
        spoke = HUB_OUT_SAS[o.spi][0]
        key = scenario.TUNNELS[spoke.tunnel][1]
        if row["esp.spi"] == "" or int(row["esp.spi"], 16) != o.spi:
            fail(f"{what}: SPI {row['esp.spi']!r}")
        if row["esp.icv_good"] != "1":
            fail(f"{what}: ICV not verified good ({row['esp.icv_good']!r})")
        if ":esp:gre:ip:" not in row["frame.protocols"] + ":":
            fail(f"{what}: not decrypted to GRE/IPv4: {row['frame.protocols']}")
        if row["gre.key"] == "" or int(row["gre.key"], 16) != key:
            fail(f"{what}: GRE key {row['gre.key']!r}, want {key}")
        dsts = row["ip.dst"].split(",")
        if len(dsts) != 2 or dsts[0] != spoke.nbma:
            fail(f"{what}: IPv4 destinations {dsts}")
        if any(s != "1" for s in row["ip.checksum.status"].split(",")):
            fail(f"{what}: IPv4 checksums {row['ip.checksum.status']} (1 = good)")
        if any(s not in ("", "1") for s in row["udp.checksum.status"].split(",")):
            fail(f"{what}: UDP checksum {row['udp.checksum.status']} (1 = good)")
        if row["_ws.malformed"]:
            fail(f"{what}: malformed: {row['_ws.malformed']}")
    if n_esp == 0:
        fail("no ESP frame to decrypt")


def tshark_reassembly():
    """tshark puts the hub's fragments back together (after decrypting ESP with the keys of
    esp_sa.uat): each datagram of expect_reassembled.txt must come out whole and identical."""
    d = sys.argv[1]
    want = collections.defaultdict(list)
    with open(os.path.join(d, "expect_reassembled.txt")) as f:
        for line in f:
            if line.strip():
                role, ident, payload = line.split()
                want[role].append((int(ident), payload))
    for role, datagrams in want.items():
        args = tshark_args(f"out_{role}.pcap")
        fields = ["ip.id", "ip.reassembled.data", "ip.fragment.count", "ip.fragment.error",
                  "udp.checksum.status", "_ws.malformed"]
        args += ["-o", "ip.defragment:TRUE", "-Y", "ip.reassembled.data", "-T", "fields",
                 "-E", "occurrence=l", "-E", "separator=|"]
        for f in fields:
            args += ["-e", f]
        r = subprocess.run(args, capture_output=True, text=True)
        if r.returncode != 0:
            fail(f"tshark (reassembly, {role}) failed: {r.stderr}")
            continue
        got = {}
        for line in r.stdout.splitlines():
            row = dict(zip(fields, line.split("|")))
            got[int(row["ip.id"], 16)] = row
        for ident, payload in datagrams:
            what = f"{role}: datagram ID {ident} reassembled by tshark"
            row = got.get(ident)
            if row is None:
                fail(f"{what}: not found")
                continue
            if row["ip.reassembled.data"].replace(":", "") != payload:
                fail(f"{what}: differs from the original payload")
            if row["ip.fragment.error"] or row["_ws.malformed"]:
                fail(f"{what}: error {row['ip.fragment.error']!r} {row['_ws.malformed']!r}")
            if row["udp.checksum.status"] != "1":
                fail(f"{what}: UDP checksum status {row['udp.checksum.status']!r} (1 = good)")


def main():
    got_und = compare_frames()
    compare_punts()
    tshark_esp(got_und)
    tshark_reassembly()
    for e in errors:
        print("golden:", e)
    print(f"golden: {len(errors)} difference(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
