#!/usr/bin/python3
"""dmvpn-decode against tshark on every capture: the shipped ones (tests/data/captures and its
subfolders) and those in $DMVPN_SHARED_CAPTURES when that folder exists (deduplicated by file
name, shipped copy first).

For every packet both tools see, each field dmvpn-decode prints must hold the values tshark
shows for it, in the same order; in the NHRP layer the converse holds too: every field tshark
shows must be in dmvpn-decode's output. Where tshark and the RFCs part ways the comparison says
so (see TSHARK_DIFFERS) and compares what is comparable. A packet dmvpn-decode refuses
("error") must be one tshark also marks malformed or cut short, and the exit status must say
whether an NHRP packet failed.

Captures with a NAME.ikev2_decryption_table beside them (the strongSwan captures) are compared
a second time with the key table: dmvpn-decode --ikev2-keys TABLE against tshark with the same
table in its configuration directory, field by field as above, the decrypted inner payloads
included; every SK payload must open (the SPIs of every encrypted message are in the table),
and with one key byte changed none of that IKE SA's messages may (dmvpn.ike.decrypt_error).
Messages in RFC 7383 fragments (SKF) are put back together by both tools: every fragment must
verify, and the frame whose fragment completes a message must show its inner payloads equal to
tshark's (which reassembles them in that frame); with the changed key no fragment verifies. A
table that does not parse is refused (exit 2) with its line.

Environment (tests/meson.build test_env): DMVPN_TESTDATA, DMVPN_SHARED_CAPTURES, DMVPN_BUILD.
"""

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

# A capture re-framed into every link type the decoder reads (see synthesize()).
SYNTHESIS_SOURCE = "cisco-ios-nhrp-regreq-regreply-natext-auth-NHRPAUTH-grekey2.pcap"

# Captures whose one packet is known to be malformed, and what dmvpn-decode must say.
# (file name, frame number, whether it is NHRP: exit status 1)
KNOWN_MALFORMED = {
    # A fuzzed Resolution Request over IP protocol 54: packet length 30547 in a 44-byte packet.
    "malformed-nhrp-resreq-cie-overruns-mandatory-part.pcap": (1, True),
    # ESP in UDP 4500 cut to 46 of 65613 bytes: the IPv4 total length runs past the capture.
    "malformed-esp-truncated-header.pcap": (1, False),
}

# Where tshark 4.0 and the RFCs disagree; these fields or subtrees are left out of the
# field-by-field comparison, and what can be compared is checked by hand below.
TSHARK_DIFFERS = {
    # RFC 2332 section 5.2.7 (Error Indication) and draft-detienne-dmvpn-01 (Traffic
    # Indication): the quoted packet ends at the extension offset. tshark hands everything from
    # the end of the addresses to the end of the NHRP packet to the IP (or NHRP) dissector,
    # extensions included, so its "Packet Causing Indication" subtree holds IP/ICMP (or nested
    # NHRP) fields plus the extensions as ICMP data. check_indication() compares the quoted
    # packet's IP addresses instead.
    "subtrees": {"Packet Causing Indication"},
    # Fields tshark 4.0 has no name for: the Traffic Indication's code and unused word
    # (draft-detienne-dmvpn-01) and the quoted packet's bytes.
    "decoder_only": {"nhrp.traffic.code", "nhrp.traffic.unused", "nhrp.indication.packet",
                     # An SK payload whose keys are in the table but whose ICV does not verify.
                     "dmvpn.ike.decrypt_error"},
    # RFC 2332 section 5.2.0.1: a CIE holds the client NBMA address, then the client NBMA
    # subaddress, then the client protocol address. tshark 4.0 does not step over the
    # subaddress, so in a CIE that has one it reads the protocol address from the subaddress's
    # first bytes. cie_protocol_addresses() predicts exactly that misreading from dmvpn-decode's
    # fields, so the comparison still holds every value.
    "cie_subaddress_misread": "nhrp.client.prot.addr",
    # An ISAKMP payload tshark cannot read (tcpdump's Main Mode carries NAT-D under the drafts'
    # payload number 15, which IANA gave to GDOI's SA KEK) ends its dissection there and marks
    # the packet malformed; dmvpn-decode keeps such a payload opaque and goes on. Then tshark's
    # values of each isakmp.* field must be the first ones of dmvpn-decode's. Conversely, where
    # dmvpn-decode refuses a message that tshark marks malformed, dmvpn-decode stops at the
    # header and tshark reads on: dmvpn-decode's values must be the first ones of tshark's.
    "isakmp_prefix_when_malformed": "isakmp.",
}

# tshark fields of the NHRP layer that carry no packet value (expert items, text labels).
TSHARK_IGNORED_PREFIXES = ("_ws.",)

# Layers compared, by tshark layer name; only the first (outermost) instance of each.
LAYERS = ("frame", "eth", "vlan", "sll", "ip", "udp", "gre", "esp", "nhrp", "isakmp")


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def captures():
    seen = {}
    testdata = os.environ.get("DMVPN_TESTDATA")
    if not testdata:
        fail("DMVPN_TESTDATA is not set")
    dirs = [Path(testdata) / "captures"]
    shared = os.environ.get("DMVPN_SHARED_CAPTURES")
    if shared and Path(shared).is_dir():
        dirs.append(Path(shared))
    for d in dirs:
        # Subfolders too: tests/data/captures/frr/ holds the FRR hub + spokes reference captures.
        for p in sorted(d.rglob("*")):
            if p.suffix in (".pcap", ".pcapng") and p.name not in seen:
                seen[p.name] = p
    return [seen[k] for k in sorted(seen)]


def inet_checksum(b):
    b += b"\0" * (len(b) % 2)
    total = sum(struct.unpack(f">{len(b) // 2}H", b))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def nhrp(op, shtl_bits, mandatory, extensions):
    """An NHRP packet (RFC 2332 section 5) with its lengths, offset and checksum filled in.
    `mandatory` starts at the source protocol length; shtl_bits has the source NBMA length."""
    ext = b"".join(struct.pack(">HH", t, len(v)) + v for t, v in extensions)
    size = 20 + len(mandatory) + len(ext)
    extoff = 20 + len(mandatory) if extensions else 0
    fixed = struct.pack(">HH5sBHHHBBBB", 1, 0x0800, b"\0" * 5, 254, size, 0, extoff, 1, op,
                        shtl_bits, 0)
    pkt = bytearray(fixed + mandatory + ext)
    struct.pack_into(">H", pkt, 12, inet_checksum(bytes(pkt)))
    return bytes(pkt)


def ipv4_gre(payload, key=None):
    gre = struct.pack(">HH", 0x2000 if key is not None else 0, 0x2001)
    if key is not None:
        gre += struct.pack(">I", key)
    total = 20 + len(gre) + len(payload)
    hdr = bytearray(struct.pack(">BBHHHBBH4s4s", 0x45, 0, total, 1, 0, 64, 47, 0,
                                bytes([198, 51, 100, 2]), bytes([198, 51, 100, 1])))
    struct.pack_into(">H", hdr, 10, inet_checksum(bytes(hdr)))
    return bytes(hdr) + gre + payload


def crafted_packets():
    """NHRP that no capture here holds: a Purge Request (N flag) with Vendor-Private, RFC 2735
    Device Capabilities (type 9, length 8) and an unknown extension; an Error Indication
    quoting it; a Resolution Reply with a 6-byte NBMA address (not IPv4, so Wireshark's
    *_bytes fields) and a CIE carrying a subaddress."""
    a = lambda *o: bytes(o)
    cie = struct.pack(">BBHHHBBBB", 0, 32, 0, 1400, 600, 4, 0, 4, 0) + a(198, 51, 100, 9) + \
        a(10, 0, 0, 9)
    purge_mand = struct.pack(">BBHI", 4, 4, 0x8002, 7) + a(198, 51, 100, 2) + a(10, 0, 0, 2) + \
        a(10, 0, 0, 1) + cie
    purge = nhrp(5, 4, purge_mand, [
        (0x0008, a(0x00, 0x00, 0x0C) + b"abcd"),      # Vendor-Private, Cisco's OUI
        (0x0009, struct.pack(">II", 1, 0)),            # RFC 2735 Device Capabilities
        (0x0123, a(1, 2, 3)),                          # unknown, not compulsory
        (0x8000, b""),                                 # End
    ])
    err_mand = struct.pack(">BBHHH", 4, 4, 0, 6, 0) + a(198, 51, 100, 1) + a(10, 0, 0, 1) + \
        a(10, 0, 0, 2) + purge[:24]
    error_ind = nhrp(7, 4, err_mand, [])
    cie6 = struct.pack(">BBHHHBBBB", 0, 24, 0, 1500, 300, 6, 2, 4, 0) + \
        a(2, 0, 0, 0, 0, 1) + a(0xAB, 0xCD) + a(10, 1, 0, 0)
    res_mand = struct.pack(">BBHI", 4, 4, 0xD802, 9) + a(2, 0, 0, 0, 0, 2) + a(10, 0, 0, 3) + \
        a(10, 1, 0, 1) + cie6
    res_reply = nhrp(2, 6, res_mand, [(0x8003, cie6), (0x8000, b"")])
    return [(0, ipv4_gre(purge, 42)), (1000, ipv4_gre(error_ind)), (2000, ipv4_gre(res_reply, 7)),
            (3000, ipv4_udp(4500, b"\0\0\0\0" + ike_natt_request()))] + \
        [(4000 + 1000 * i, ipv4_udp(port, msg)) for i, (port, msg) in enumerate(isakmp_messages())]


def ipv4_udp(port, payload):
    udp = struct.pack(">HHHH", port, port, 8 + len(payload), 0) + payload
    hdr = bytearray(struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 2, 0, 64, 17, 0,
                                bytes([198, 51, 100, 2]), bytes([198, 51, 100, 1])))
    struct.pack_into(">H", hdr, 10, inet_checksum(bytes(hdr)))
    return bytes(hdr) + udp


def ike_natt_request():
    """An IKEv2 message (RFC 7296 section 3) on UDP 4500 after the non-ESP marker, with what no
    capture here holds: an ESP proposal with its SPI, two proposals, a transform with an
    unknown TLV attribute besides Key Length, an ESN transform, a Notify with an SPI
    (REKEY_SA) and an IDi."""
    def payload(nxt, body, flags=0):
        return struct.pack(">BBH", nxt, flags, 4 + len(body)) + body

    def transform(last, ttype, tid, attrs=b""):
        return struct.pack(">BBHBBH", 0 if last else 3, 0, 8 + len(attrs), ttype, 0, tid) + attrs

    def proposal(last, num, spi, transforms):
        body = struct.pack(">BBBB", num, 3, len(spi), len(transforms)) + spi + b"".join(transforms)
        return struct.pack(">BBH", 0 if last else 2, 0, 4 + len(body)) + body

    sa = proposal(False, 1, bytes.fromhex("c0ffee01"), [
        transform(False, 1, 20, struct.pack(">HH", 0x800E, 256) + struct.pack(">HH", 0x0033, 2)
                  + b"\xab\xcd"),
        transform(True, 5, 0)]) + \
        proposal(True, 2, bytes.fromhex("c0ffee02"), [
            transform(False, 1, 12, struct.pack(">HH", 0x800E, 128)),
            transform(False, 3, 12),
            transform(True, 5, 1)])
    chain = payload(41, sa) + \
        payload(35, struct.pack(">BBH", 3, 4, 16393) + bytes.fromhex("c0ffee01")) + \
        payload(0, struct.pack(">B3x", 2) + b"spoke1.example")
    hdr = bytes.fromhex("0102030405060708") + bytes(8) + \
        struct.pack(">BBBBII", 33, 0x20, 36, 0x08, 5, 28 + len(chain))
    return hdr + chain


def isakmp_messages():
    """ISAKMP / IKEv1 messages (RFC 2408 section 3, RFC 2407 section 4, RFC 3947) with what the
    one IKEv1 capture here (tcpdump's Main Mode, whose Quick Mode is encrypted) does not hold:
    a Quick Mode in the clear with an ESP proposal (SPI, Phase 2 attributes: life type and a
    TLV duration, UDP-encapsulated transport, HMAC-SHA, key length, PFS group), two proposals,
    HASH, Nonce, KE, IDci/IDcr with protocol 47 and NAT-OA; an Informational with R-U-THERE,
    INITIAL-CONTACT, RESPONDER-LIFETIME, Delete and NAT-D, on UDP 4500 after the marker; and a
    hostile one whose transform runs past its proposal (port, message)."""
    def payload(nxt, body):
        return struct.pack(">BBH", nxt, 0, 4 + len(body)) + body

    def transform(last, num, tid, attrs):
        return payload(0 if last else 3, struct.pack(">BBH", num, tid, 0) + attrs)

    def proposal(last, num, proto, spi, transforms):
        return payload(0 if last else 2, struct.pack(">BBBB", num, proto, len(spi),
                                                     len(transforms)) + spi + b"".join(transforms))

    def header(first, exch, mid, chain, flags=0):
        return bytes.fromhex("0102030405060708 1112131415161718") + \
            struct.pack(">BBBBII", first, 0x10, exch, flags, mid, 28 + len(chain)) + chain

    p2 = struct.pack(">HH", 0x8001, 1) + struct.pack(">HHI", 2, 4, 120) + \
        struct.pack(">HH", 0x8004, 4) + struct.pack(">HH", 0x8005, 2) + \
        struct.pack(">HH", 0x8006, 128) + struct.pack(">HH", 0x8003, 2)
    sa = struct.pack(">II", 1, 1) + \
        proposal(False, 1, 3, bytes.fromhex("c0ffee01"), [transform(True, 1, 12, p2)]) + \
        proposal(True, 2, 3, bytes.fromhex("c0ffee02"), [
            transform(False, 1, 3, struct.pack(">HH", 0x8004, 61444) + struct.pack(">HH", 0x8005, 1)),
            transform(True, 2, 12, struct.pack(">HH", 0x8004, 2))])
    quick = payload(1, bytes(range(20))) + payload(10, sa) + payload(4, bytes(16 * [0x22])) + \
        payload(5, bytes(128 * [0x33])) + payload(5, struct.pack(">BBH4s", 1, 47, 0,
                                                                 bytes([198, 51, 100, 2]))) + \
        payload(21, struct.pack(">BBH4s", 1, 47, 0, bytes([198, 51, 100, 1]))) + \
        payload(0, struct.pack(">B3x4s", 1, bytes([10, 0, 0, 1])))
    cookies = bytes.fromhex("01020304050607081112131415161718")
    info = payload(11, struct.pack(">IBBH", 1, 1, 16, 36136) + cookies + struct.pack(">I", 5)) + \
        payload(11, struct.pack(">IBBH", 1, 1, 16, 24578) + cookies) + \
        payload(12, struct.pack(">IBBH", 1, 3, 4, 24576) + bytes.fromhex("c0ffee01") +
                struct.pack(">HH", 0x8001, 1) + struct.pack(">HHI", 2, 4, 3600)) + \
        payload(20, struct.pack(">IBBH", 1, 3, 4, 2) + bytes.fromhex("c0ffee01c0ffee02")) + \
        payload(0, bytes(range(20)))
    hostile_sa = struct.pack(">II", 1, 1) + \
        payload(0, struct.pack(">BBBB", 1, 1, 0, 1) + struct.pack(">BBH", 0, 0, 200) + b"\1\1\0\0")
    return [(500, header(8, 32, 0x0F2B7862, quick)),
            (4500, b"\0\0\0\0" + header(11, 5, 7, info)),
            (500, header(1, 2, 0, payload(0, hostile_sa)))]


def synthesize(source, out):
    """The NHRP packets of `source` (classic pcap, Ethernet with one 802.1Q tag) and those of
    crafted_packets() framed into a big-endian, nanosecond pcapng whose four interfaces each
    have their own link type: Ethernet, Linux cooked v1, Linux cooked v2 and raw IP. tshark
    reads it too, so link layers, per-interface link types and the NHRP fields no capture holds
    are compared like any capture's."""
    data = source.read_bytes()
    order = "<" if data[:4] == b"\xd4\xc3\xb2\xa1" else ">"
    off, ip_packets = 24, []
    while off + 16 <= len(data):
        sec, usec, caplen, _ = struct.unpack(order + "IIII", data[off:off + 16])
        frame = data[off + 16:off + 16 + caplen]
        off += 16 + caplen
        ip_packets.append((sec * 10**9 + usec * 1000, frame[18:]))  # past MACs and the tag

    def block(btype, body):
        body += b"\0" * (-len(body) % 4)
        total = 12 + len(body)
        return struct.pack(">II", btype, total) + body + struct.pack(">I", total)

    mac = bytes.fromhex("aabbcc000110")
    links = [
        (1, lambda ip: bytes.fromhex("aabbcc000510") + mac + b"\x08\x00" + ip),
        (113, lambda ip: struct.pack(">HHH", 0, 1, 6) + mac + b"\0\0" + b"\x08\x00" + ip),
        (276, lambda ip: struct.pack(">HHIHBB", 0x0800, 0, 3, 1, 4, 6) + mac + b"\0\0" + ip),
        (101, lambda ip: ip),
    ]
    # SHB; an IDB per link type with if_tsresol = 9 (nanoseconds), then EPBs round robin.
    out_bytes = block(0x0A0D0D0A, struct.pack(">IHHq", 0x1A2B3C4D, 1, 0, -1))
    for linktype, _ in links:
        tsresol = struct.pack(">HHB", 9, 1, 9) + b"\0\0\0" + struct.pack(">HH", 0, 0)
        out_bytes += block(1, struct.pack(">HHI", linktype, 0, 0) + tsresol)
    ip_packets += [(ts + 10**9, ip) for ts, ip in crafted_packets()]
    for i, (ts, ip) in enumerate(ip_packets):
        ifc = i % len(links)
        frame = links[ifc][1](ip)
        out_bytes += block(6, struct.pack(">IIIII", ifc, ts >> 32, ts & 0xFFFFFFFF, len(frame),
                                          len(frame)) + frame)
    out.write_bytes(out_bytes)
    return out


def run_decoder(decoder, path, keys=None):
    args = [decoder] + (["--ikev2-keys", str(keys)] if keys else []) + [str(path)]
    r = subprocess.run(args, capture_output=True, text=True, timeout=120)
    packets = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    return packets, r.returncode, r.stderr


def run_tshark(path, keys=None):
    env = None
    cfg = None
    if keys:
        cfg = tempfile.TemporaryDirectory()
        shutil.copy(keys, Path(cfg.name) / "ikev2_decryption_table")
        env = dict(os.environ, WIRESHARK_CONFIG_DIR=cfg.name)
    r = subprocess.run(
        ["tshark", "-r", str(path), "-n", "-o", "nhrp.auth_ext_has_addr:FALSE",
         "-T", "json", "--no-duplicate-keys"],
        capture_output=True, text=True, timeout=300, env=env)
    if cfg:
        cfg.cleanup()
    if r.returncode != 0 and not r.stdout.strip():
        fail(f"{path.name}: tshark failed: {r.stderr.strip()}")
    return [p["_source"]["layers"] for p in json.loads(r.stdout)]


def collect(node, out, skip_subtrees):
    """Field name -> every value in document order, descending into subtrees."""
    for key, value in node.items():
        if key in skip_subtrees:
            continue
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, dict):
                collect(v, out, skip_subtrees)
            else:
                out.setdefault(key, []).append(v)


def tshark_fields(layers):
    fields = {}
    for name in LAYERS:
        layer = layers.get(name)
        if layer is None:
            continue
        if isinstance(layer, list):
            layer = layer[0]  # outermost: GRE and ICMP errors carry an inner IP layer
        if isinstance(layer, dict):
            collect(layer, fields, TSHARK_DIFFERS["subtrees"] if name == "nhrp" else set())
    return fields


def normalize(mine, theirs):
    """tshark's string for a field, in the type dmvpn-decode uses for it."""
    if isinstance(mine, bool):
        return theirs in ("1", "True", "true")
    if isinstance(mine, int):
        return int(theirs, 0)
    return theirs.lower()


def tshark_flags_trouble(layers):
    """Whether tshark marks the packet malformed or cut short."""
    text = json.dumps(layers)
    return "_ws.malformed" in text or "_ws.short" in text


def check_indication(where, mine, layers):
    """Traffic/Error Indication: the quoted packet's IPv4 addresses as tshark read them."""
    if mine.get("nhrp.hdr.op.type") != 8:
        return 0
    nhrp = layers["nhrp"] if isinstance(layers["nhrp"], dict) else layers["nhrp"][0]
    inner = {}
    collect(nhrp.get("Packet Causing Indication", {}), inner, set())
    if "ip.src" not in inner:
        return 0  # tshark did not read an IPv4 packet there either
    raw = bytes.fromhex(mine.get("nhrp.indication.packet", "").replace(":", ""))
    if len(raw) < 20 or raw[0] >> 4 != 4:
        fail(f"{where}: tshark reads an IPv4 packet in the indication, dmvpn-decode has "
             f"{raw.hex()}")
    src = ".".join(str(b) for b in raw[12:16])
    dst = ".".join(str(b) for b in raw[16:20])
    if inner.get("ip.src", [None])[0] != src or inner.get("ip.dst", [None])[0] != dst:
        fail(f"{where}: quoted packet {src} -> {dst}, tshark read "
             f"{inner.get('ip.src')} -> {inner.get('ip.dst')}")
    # The quoted packet ends where the extensions start (RFC 2332 section 5.3: extoff).
    expected = mine["nhrp.hdr.extoff"] - 20 - 4 - 4 - mine["nhrp.hdr.shtl.len"] - \
        mine["nhrp.hdr.sstl.len"] - mine["nhrp.src.prot.len"] - mine["nhrp.dst.prot.len"]
    if mine["nhrp.hdr.extoff"] and len(raw) != expected:
        fail(f"{where}: quoted packet is {len(raw)} bytes, extoff says {expected}")
    return 2


def cie_protocol_addresses(mine):
    """nhrp.client.prot.addr as tshark 4.0 reads it (see TSHARK_DIFFERS)."""
    addrs = list(mine.get("nhrp.client.prot.addr", []))
    subs = iter(mine.get("nhrp.client.nbma.saddr", []))
    out = []
    for sub_len, prot_len in zip(mine.get("nhrp.cli.saddr_tl.len", []),
                                 mine.get("nhrp.prot.len", [])):
        sub = bytes.fromhex(next(subs).replace(":", "")) if sub_len else b""
        if prot_len != 4:
            continue
        prot = bytes(int(x) for x in addrs.pop(0).split("."))
        out.append(".".join(str(b) for b in (sub + prot)[:4]))
    return out


def compare_packet(where, mine, layers):
    """Returns how many values were compared."""
    theirs = tshark_fields(layers)
    compared = 0
    for key, value in mine.items():
        if key == "error" or key in TSHARK_DIFFERS["decoder_only"]:
            continue
        mine_values = value if isinstance(value, list) else [value]
        if key == TSHARK_DIFFERS["cie_subaddress_misread"]:
            mine_values = cie_protocol_addresses(mine)
        if key not in theirs:
            fail(f"{where}: dmvpn-decode has {key}={value}, tshark has no such field")
        got = theirs[key]
        if key.startswith(TSHARK_DIFFERS["isakmp_prefix_when_malformed"]) and \
                tshark_flags_trouble(layers):
            if "error" not in mine and len(got) < len(mine_values):
                mine_values = mine_values[:len(got)]
            elif "error" in mine and len(got) > len(mine_values):
                got = got[:len(mine_values)]
        if len(got) != len(mine_values):
            fail(f"{where}: {key}: dmvpn-decode {mine_values}, tshark {got}")
        for m, t in zip(mine_values, got):
            if m != normalize(m, t):
                fail(f"{where}: {key}: dmvpn-decode {m!r}, tshark {t!r}")
            compared += 1
    if "nhrp" in layers and "error" not in mine:
        for key in theirs:
            if not key.startswith("nhrp") or key.startswith(TSHARK_IGNORED_PREFIXES):
                continue
            if key not in mine:
                fail(f"{where}: tshark shows {key}={theirs[key]}, dmvpn-decode does not")
        compared += check_indication(where, mine, layers)
    return compared


SK, SKF = 46, 53


def payload_types(m):
    v = m.get("isakmp.typepayload", [])
    return v if isinstance(v, list) else [v]


def check_keyed(decoder, path, table):
    """The capture decoded with its key table, against tshark with the same table. Returns
    (messages decrypted, values compared)."""
    mine, rc, stderr = run_decoder(decoder, path, table)
    if rc == 2:
        fail(f"{path.name} with {table.name}: dmvpn-decode refused it: {stderr.strip()}")
    theirs = run_tshark(path, table)
    if len(mine) != len(theirs):
        fail(f"{path.name} (keys): dmvpn-decode printed {len(mine)} packets, tshark "
             f"{len(theirs)}")
    decrypted = compared = fragments = reassembled = 0
    for m, t in zip(mine, theirs):
        where = f"{path.name} (keys) frame {m['frame.number']}"
        types = payload_types(m)
        if SKF in types:
            fragments += 1
            if "dmvpn.ike.decrypt_error" in m:
                fail(f"{where}: SKF fragment did not open: {m['dmvpn.ike.decrypt_error']}")
            theirs_whole = "isakmp.reassembled.length" in json.dumps(t)
            if theirs_whole != (len(types) > 1):
                fail(f"{where}: tshark {'reassembled' if theirs_whole else 'did not reassemble'} "
                     f"a message here, dmvpn-decode shows inner payloads {types[1:]}")
            reassembled += len(types) > 1
        elif SK in types:
            if "dmvpn.ike.decrypt_error" in m:
                fail(f"{where}: SK payload did not open: {m['dmvpn.ike.decrypt_error']}")
            if "isakmp.enc.decrypted" not in json.dumps(t):
                fail(f"{where}: tshark did not decrypt it, dmvpn-decode did")
            decrypted += 1
        compared += compare_packet(where, m, t)
    if decrypted == 0 and reassembled == 0:
        fail(f"{path.name} (keys): no encrypted message was decrypted")
    if fragments and not reassembled:
        fail(f"{path.name} (keys): {fragments} fragments, no message reassembled")

    # One byte of the first row's SK_ei/SK_er (AES-GCM: the tag depends on them) or SK_ai/SK_ar
    # (AES-CBC + HMAC) changed: none of its messages opens.
    lines = table.read_text().splitlines()
    first = next(i for i, l in enumerate(lines) if l and not l.startswith("#"))
    f = lines[first].split(",")
    for k in ((2, 3) if f[5] == "" else (5, 6)):
        f[k] = ("0" if f[k][0] != "0" else "1") + f[k][1:]
    spis = (":".join(f[0][i:i + 2] for i in range(0, 16, 2)),
            ":".join(f[1][i:i + 2] for i in range(0, 16, 2)))
    lines[first] = ",".join(f)
    with tempfile.TemporaryDirectory() as d:
        bad_table = Path(d) / "bad"
        bad_table.write_text("\n".join(lines) + "\n")
        bad, rc, stderr = run_decoder(decoder, path, bad_table)
    if rc == 2:
        fail(f"{path.name}: the changed table was refused: {stderr.strip()}")
    of_first = [m for m in bad if (SK in payload_types(m) or SKF in payload_types(m))
                and (m.get("isakmp.ispi"), m.get("isakmp.rspi")) == spis]
    opened = [m["frame.number"] for m in of_first if "dmvpn.ike.decrypt_error" not in m]
    if not of_first or opened:
        fail(f"{path.name}: with one key byte changed, frames {opened} of the first IKE SA's "
             f"{len(of_first)} encrypted messages still opened")
    print(f"ok {path.name} with {table.name}: {decrypted} messages decrypted and "
          f"{reassembled} reassembled from {fragments} fragments, equal to tshark's; with a "
          f"changed key none of {len(of_first)} opens")
    return decrypted + reassembled, compared


def check_hostile_tables(decoder, path):
    """Key tables that are not ikev2_decryption_tables: refused, exit 2, with the line."""
    cases = {
        "short row": ("0011223344556677,8899aabbccddeeff,00\n", "line 1: 3 fields"),
        "bad hex": ("# ok\nzz11223344556677,8899aabbccddeeff,,,\"AES-CBC-128 [RFC3602]\",,,"
                    "\"HMAC_SHA2_256_128 [RFC4868]\"\n", "line 2: SPIi"),
        "unknown algorithm": ("0011223344556677,8899aabbccddeeff,00,00,\"ROT13\",,,"
                              "\"NONE [RFC4306]\"\n", "encryption algorithm \"ROT13\""),
    }
    with tempfile.TemporaryDirectory() as d:
        for what, (text, says) in cases.items():
            table = Path(d) / "table"
            table.write_text(text)
            out, rc, stderr = run_decoder(decoder, path, table)
            if rc != 2 or out or says not in stderr:
                fail(f"hostile key table ({what}): exit {rc}, {len(out)} packets, stderr "
                     f"{stderr.strip()!r}; expected exit 2 naming {says!r}")
        out, rc, stderr = run_decoder(decoder, path, Path(d) / "missing")
        if rc != 2 or "cannot open" not in stderr:
            fail(f"missing key table: exit {rc}, stderr {stderr.strip()!r}")
    print(f"ok hostile key tables refused ({len(cases) + 1} cases)")


def main():
    build = os.environ.get("DMVPN_BUILD")
    if not build:
        fail("DMVPN_BUILD is not set")
    if shutil.which("tshark") is None:
        fail("tshark is not installed (scripts/setup installs it)")
    decoder = Path(build) / "dmvpn-decode"
    if not decoder.is_file():
        fail(f"{decoder} is missing: build it first")
    files = captures()
    names = {p.name for p in files}
    for known in list(KNOWN_MALFORMED) + [SYNTHESIS_SOURCE]:
        if known not in names:
            fail(f"{known} is missing from the captures")
    tmp = tempfile.TemporaryDirectory()
    source = next(p for p in files if p.name == SYNTHESIS_SOURCE)
    files.append(synthesize(source, Path(tmp.name) / "synthesized-eth-sll-sll2-raw.pcapng"))

    total_packets = total_nhrp = total_ike = total_isakmp = total_values = 0
    for path in files:
        mine, rc, stderr = run_decoder(decoder, path)
        theirs = run_tshark(path)
        if rc == 2:
            fail(f"{path.name}: dmvpn-decode could not read it: {stderr.strip()}")
        if len(mine) != len(theirs):
            fail(f"{path.name}: dmvpn-decode printed {len(mine)} packets, tshark {len(theirs)}")
        nhrp_failed = False
        errors = set()
        for m, t in zip(mine, theirs):
            where = f"{path.name} frame {m['frame.number']}"
            total_ike += "isakmp.ispi" in m and m.get("isakmp.mjver") == 2
            total_isakmp += "isakmp.ispi" in m and m.get("isakmp.mjver") == 1
            if "error" in m:
                errors.add(m["frame.number"])
                is_nhrp = m.get("gre.proto") == 0x2001 or m.get("ip.proto") == 54
                nhrp_failed |= is_nhrp
                if not tshark_flags_trouble(t):
                    fail(f"{where}: dmvpn-decode says {m['error']}, tshark decodes it cleanly")
            total_values += compare_packet(where, m, t)
            if "nhrp.hdr.op.type" in m:
                total_nhrp += 1
        want_rc = 1 if nhrp_failed else 0
        if rc != want_rc:
            fail(f"{path.name}: exit status {rc}, expected {want_rc} "
                 f"(an NHRP packet failed: {nhrp_failed})")
        if path.name in KNOWN_MALFORMED:
            frame, is_nhrp = KNOWN_MALFORMED[path.name]
            if frame not in errors:
                fail(f"{path.name}: frame {frame} decoded without an error")
            if is_nhrp and rc != 1:
                fail(f"{path.name}: exit status {rc} for a malformed NHRP packet")
        total_packets += len(mine)
        print(f"ok {path.name}: {len(mine)} packets, errors in frames {sorted(errors) or 'none'}"
              f", exit {rc}")

    keyed_files = keyed_msgs = 0
    for path in files:
        table = path.with_name(path.name[:-len(path.suffix)] + ".ikev2_decryption_table")
        if table.is_file():
            n, values = check_keyed(decoder, path, table)
            keyed_files += 1
            keyed_msgs += n
            total_values += values
    if keyed_files == 0:
        fail("no capture with an ikev2_decryption_table was compared")
    check_hostile_tables(decoder, files[0])

    if total_nhrp == 0:
        fail("no NHRP packet was compared")
    if total_ike == 0:
        fail("no IKEv2 message was compared")
    if total_isakmp == 0:
        fail("no ISAKMP (IKEv1) message was compared")
    print(f"{len(files)} captures, {total_packets} packets, {total_nhrp} NHRP packets decoded, "
          f"{total_ike} IKEv2 messages decoded, {keyed_msgs} decrypted with the key tables of "
          f"{keyed_files} captures, {total_isakmp} ISAKMP (IKEv1) messages decoded, "
          f"{total_values} values equal to tshark's")


if __name__ == "__main__":
    main()
