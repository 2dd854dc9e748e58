"""Golden-pcap scenario for the dataplane: the hub's tables, the input captures and what must
come out, all computed here with scapy (an implementation independent of the hub's codecs and
crypto).

`python3 scenario.py DIR` writes into DIR:
  setup.txt            what the runner (tests/unit/dataplane_golden_test.cpp) publishes: ports,
                       tunnels, SAs with their keys, adjacencies, routes (format below)
  lan_in.pcap          frames the LAN port receives
  underlay_in.pcap     frames the underlay port receives
  expect_lan.pcap      frames the LAN port must send
  expect_underlay.pcap frames the underlay port must send (ESP encrypted by scapy with the hub's
                       outbound keys; see check.py for which fields are compared how)
  expect_punts.txt     punted packets and events, one per line (format of punts.txt below)
  expect_counters.txt  `drop NAME N`, `punt NAME N`, `rx ROLE N`, `tx ROLE N`: every reason
                       not listed must stay at 0
  esp_sa.uat           tshark's esp_sa table for the hub's outbound SAs
  expect_reassembled.txt  `ROLE ID HEX`: datagrams the hub sends as fragments, which tshark must
                       reassemble (on port ROLE, ESP decrypted) to exactly HEX (the payload
                       after the IPv4 header)

setup.txt, one object per line, fields separated by spaces:
  port ROLE MAC
  tunnel INDEX NBMA OVERLAY KEY IPSEC(0|1) IP_MTU TCP_MSS TTL
  sa NAME in|out SPI(hex) aes_gcm_16|aes_cbc|des3_cbc CIPHER_KEY(hex)
     none|hmac_sha1_96|hmac_sha256_128|hmac_md5_96
     INTEG_KEY(hex|-)
  inbound SA_NAME TUNNEL
  adj_tunnel ID TUNNEL OVERLAY NBMA UNDERLAY_MAC SA_NAME|-
  adj_lan ID ROLE ADDRESS MAC
  adj_incomplete ID TUNNEL NEXTHOP
  route PREFIX LEN local|glean_tunnel|glean_lan|adjacency|blackhole INDEX|ROLE|-

punts.txt / expect_punts.txt: REASON TUNNEL|- IN_ROLE OUTER_SRC NEXTHOP|- AUX|- HEX_DATA, where
AUX is the MTU for frag_needed/fragment and the egress (tunnel:N or port:ROLE) for glean.

Every input frame carries a unique tag in its innermost IPv4 ID, which is how check.py pairs an
output with its expectation (the hub reorders packets between its stages); fragments of one
datagram share the tag and are told apart by their fragment offset.

To look at a run: DMVPN_GOLDEN_KEEP=1 meson test -C BUILD dataplane_golden keeps the folder
(its path is in the log); open out_underlay.pcap in Wireshark with esp_sa.uat's lines.
"""

import collections
import hashlib
import os
import sys

from scapy.all import ARP, GRE, ICMP, IP, TCP, UDP, Ether, Raw, fragment, rdpcap, wrpcap
from scapy.layers.ipsec import ESP, SecurityAssociation

# One RX burst per port (dataplane/worker_ctx.hpp rx_burst): the glean rate limiter then
# decides every packet of a port against one timestamp, so its verdicts do not depend on timing.
RX_BURST = 32

LAN_MAC = "02:00:00:00:01:01"
UNDERLAY_MAC = "02:00:00:00:02:01"
LAN_HOST_MAC = "02:00:00:00:0a:10"
GW_MAC = "02:00:00:00:fe:01"

HUB_NBMA = "192.0.2.1"
HUB_LAN = "172.16.0.1"
LAN_HOST = "172.16.0.10"
TTL_OUT = 64
MTU = 1400
MSS = 1360

# tunnel index -> (overlay, key, ipsec)
TUNNELS = {0: ("10.0.0.1", 100, False), 1: ("10.1.0.1", 200, True)}


def key_bytes(label, n):
    """Key material both sides derive from a label: nothing secret, only reproducible."""
    out = b""
    i = 0
    while len(out) < n:
        out += hashlib.sha256(f"{label}/{i}".encode()).digest()
        i += 1
    return out[:n]


class SaSpec:
    """One SA as the hub's setup line and as a scapy SecurityAssociation."""

    def __init__(self, name, direction, spi, cipher, integ):
        self.name = name
        self.direction = direction
        self.spi = spi
        self.cipher = cipher
        self.integ = integ
        if cipher == "aes_gcm_16":
            self.ckey = key_bytes(name + "/gcm", 20)  # AES-128 key + 4-byte salt (RFC 4106)
        elif cipher == "des3_cbc":
            self.ckey = key_bytes(name + "/3des", 24)  # K1 K2 K3 (RFC 2451)
        else:
            self.ckey = key_bytes(name + "/cbc", 16)
        self.sent = 0  # outbound: the sequence number of the hub's last packet
        self.ikey = {"none": b"", "hmac_sha1_96": key_bytes(name + "/sha1", 20),
                     "hmac_sha256_128": key_bytes(name + "/sha256", 32),
                     "hmac_md5_96": key_bytes(name + "/md5", 16)}[integ]

    def scapy_sa(self):
        if self.cipher == "aes_gcm_16":
            return SecurityAssociation(ESP, spi=self.spi, crypt_algo="AES-GCM",
                                       crypt_key=self.ckey, auth_algo="NULL")
        auth = {"hmac_sha1_96": "HMAC-SHA1-96", "hmac_sha256_128": "SHA2-256-128",
                "hmac_md5_96": "HMAC-MD5-96"}[self.integ]
        crypt = "3DES" if self.cipher == "des3_cbc" else "AES-CBC"
        return SecurityAssociation(ESP, spi=self.spi, crypt_algo=crypt, crypt_key=self.ckey,
                                   auth_algo=auth, auth_key=self.ikey)

    def iv_len(self):
        return 16 if self.cipher == "aes_cbc" else 8

    def setup_line(self):
        ikey = self.ikey.hex() if self.ikey else "-"
        return (f"sa {self.name} {self.direction} {self.spi:x} {self.cipher} {self.ckey.hex()} "
                f"{self.integ} {ikey}")

    def uat_line(self, src, dst):
        # Wireshark's esp_sa UAT (tests/data/captures/esp_sa.uat): GCM keys carry their salt.
        if self.cipher == "aes_gcm_16":
            enc, auth = "AES-GCM with 16 octet ICV [RFC4106]", "NULL"
        else:
            enc = "TripleDES-CBC [RFC2451]" if self.cipher == "des3_cbc" else "AES-CBC [RFC3602]"
            auth = {"hmac_sha1_96": "HMAC-SHA-1-96 [RFC2404]",
                    "hmac_sha256_128": "HMAC-SHA-256-128 [RFC4868]",
                    "hmac_md5_96": "HMAC-MD5-96 [RFC2403]"}[self.integ]
        ikey = "0x" + self.ikey.hex() if self.ikey else ""
        return (f'"IPv4","{src}","{dst}","0x{self.spi:08x}","{enc}","0x{self.ckey.hex()}",'
                f'"{auth}","{ikey}"')


class Spoke:
    def __init__(self, adj, tunnel, overlay, nbma, sa_out=None, sa_in=None):
        self.adj = adj
        self.tunnel = tunnel
        self.overlay = overlay
        self.nbma = nbma
        self.sa_out = sa_out  # the hub's outbound SA to this spoke
        self.sa_in = sa_in    # the spoke's SA to the hub (the hub's inbound)
        self.seq = 0          # the spoke's last sequence number sent


SA5_OUT = SaSpec("hub_to_spoke5", "out", 0x5001, "aes_gcm_16", "none")
SA5_IN = SaSpec("spoke5_to_hub", "in", 0x5002, "aes_gcm_16", "none")
SA6_OUT = SaSpec("hub_to_spoke6", "out", 0x6001, "aes_cbc", "hmac_sha256_128")
SA6_IN = SaSpec("spoke6_to_hub", "in", 0x6002, "aes_cbc", "hmac_sha1_96")
# The seeds' legacy transform (IOS `esp-3des esp-md5-hmac`) out, AES-128-CBC + HMAC-MD5-96 in.
SA7_OUT = SaSpec("hub_to_spoke7", "out", 0x7001, "des3_cbc", "hmac_md5_96")
SA7_IN = SaSpec("spoke7_to_hub", "in", 0x7002, "aes_cbc", "hmac_md5_96")
# Known to the spoke only: the hub has no inbound SA with this SPI.
SA_UNKNOWN = SaSpec("stranger", "in", 0x7777, "aes_gcm_16", "none")

SPOKE2 = Spoke(1, 0, "10.0.0.2", "198.51.100.2")
SPOKE3 = Spoke(2, 0, "10.0.0.3", "198.51.100.3")
SPOKE5 = Spoke(5, 1, "10.1.0.2", "198.51.100.5", SA5_OUT, SA5_IN)
SPOKE6 = Spoke(6, 1, "10.1.0.3", "198.51.100.6", SA6_OUT, SA6_IN)
SPOKE7 = Spoke(7, 1, "10.1.0.4", "198.51.100.7", SA7_OUT, SA7_IN)
IPSEC_SPOKES = (SPOKE5, SPOKE6, SPOKE7)
INCOMPLETE_NH = "10.0.0.4"  # adjacency 4: known next hop, unresolved


def setup_lines():
    lines = [f"port lan {LAN_MAC}", f"port underlay {UNDERLAY_MAC}"]
    for i, (overlay, key, ipsec) in TUNNELS.items():
        mss = MSS if not ipsec else 0
        lines.append(f"tunnel {i} {HUB_NBMA} {overlay} {key} {int(ipsec)} {MTU} {mss} {TTL_OUT}")
    for s in (SA5_OUT, SA5_IN, SA6_OUT, SA6_IN, SA7_OUT, SA7_IN):
        lines.append(s.setup_line())
    lines += ["inbound spoke5_to_hub 1", "inbound spoke6_to_hub 1", "inbound spoke7_to_hub 1"]
    for sp in (SPOKE2, SPOKE3) + IPSEC_SPOKES:
        sa = sp.sa_out.name if sp.sa_out else "-"
        lines.append(f"adj_tunnel {sp.adj} {sp.tunnel} {sp.overlay} {sp.nbma} {GW_MAC} {sa}")
    lines.append(f"adj_lan 3 lan {LAN_HOST} {LAN_HOST_MAC}")
    lines.append(f"adj_incomplete 4 0 {INCOMPLETE_NH}")
    for a in (HUB_NBMA, HUB_LAN, TUNNELS[0][0], TUNNELS[1][0]):
        lines.append(f"route {a} 32 local -")
    lines += ["route 10.0.0.0 24 glean_tunnel 0", "route 10.1.0.0 24 glean_tunnel 1",
              "route 172.16.0.0 24 glean_lan lan"]
    for sp in (SPOKE2, SPOKE3) + IPSEC_SPOKES:
        lines.append(f"route {sp.overlay} 32 adjacency {sp.adj}")
    lines += [f"route {LAN_HOST} 32 adjacency 3", "route 10.20.0.0 16 adjacency 1",
              "route 10.30.0.0 16 adjacency 4", "route 10.40.0.0 16 blackhole -"]
    return lines


def reencode(pkt):
    """A scapy packet with every length and checksum computed, as bytes re-parsed."""
    return pkt.__class__(bytes(pkt))


def forwarded(inner):
    """The inner packet as a router forwards it: TTL - 1, header checksum recomputed."""
    p = IP(bytes(inner))
    p.ttl -= 1
    del p.chksum
    return IP(bytes(p))


def clamp_mss(inner, mss):
    """A TCP SYN with its MSS option lowered to `mss` (scapy recomputes the TCP checksum)."""
    p = IP(bytes(inner))
    opts = [(k, min(v, mss)) if k == "MSS" else (k, v) for k, v in p[TCP].options]
    p[TCP].options = opts
    del p[TCP].chksum
    return IP(bytes(p))


class Scenario:
    def __init__(self):
        self.lan_in = []
        self.und_in = []
        self.expect_lan = []
        self.expect_und = []
        self.expect_punts = []
        self.drops = collections.Counter()
        self.punts = collections.Counter()
        self.next_tag = 0x100
        self.nhrp_msgs = []
        self.reassembled = []  # (role, ID, payload bytes) of datagrams sent as fragments

    def tag(self):
        self.next_tag += 1
        return self.next_tag

    # --- packets as senders make them ---

    def inner(self, src, dst, proto="udp", size=64, ttl=64, df=False, tag=None, mss=None):
        t = self.tag() if tag is None else tag
        ip = IP(src=src, dst=dst, ttl=ttl, id=t, flags="DF" if df else 0)
        if proto == "udp":
            pay = bytes((t + i) & 0xff for i in range(size))
            return reencode(ip / UDP(sport=40000 + (t & 0xff), dport=33434) / Raw(pay))
        if proto == "tcp_syn":
            return reencode(ip / TCP(sport=40000, dport=443, flags="S", seq=0x01020304,
                                     options=[("NOP", None), ("MSS", mss)]))
        if proto == "icmp":
            return reencode(ip / ICMP(type=8, id=t, seq=1) / Raw(b"golden" * 4))
        raise ValueError(proto)

    def gre_packet(self, spoke, payload, key, gre_proto=0x0800, checksum=False):
        g = GRE(key_present=1, key=key, proto=gre_proto)
        if checksum:
            g.chksum_present = 1
        return reencode(IP(src=spoke.nbma, dst=HUB_NBMA, ttl=TTL_OUT, id=0x4242) / g /
                        Raw(bytes(payload)))

    def esp_packet(self, spoke, plain_gre, sa=None, seq=None):
        sa = sa or spoke.sa_in
        if seq is None:
            spoke.seq += 1
            seq = spoke.seq
        enc = sa.scapy_sa().encrypt(plain_gre, seq_num=seq)
        del enc[IP].chksum
        del enc[IP].len
        return reencode(enc)

    def from_lan(self, ip):
        self.lan_in.append(Ether(src=LAN_HOST_MAC, dst=LAN_MAC) / ip)

    def from_underlay(self, ip):
        self.und_in.append(Ether(src=GW_MAC, dst=UNDERLAY_MAC) / ip)

    # --- what must come out ---

    def expect_to_lan(self, inner):
        self.expect_lan.append(Ether(src=LAN_MAC, dst=LAN_HOST_MAC) / forwarded(inner))

    def expect_to_spoke(self, spoke, inner, forwarded_inner=None):
        fwd = forwarded_inner if forwarded_inner is not None else forwarded(inner)
        key = TUNNELS[spoke.tunnel][1]
        # Outer DF copies the inner one (the tunnel's df_policy::copy, Cisco's default); the
        # outer ID is the hub's choice (not compared).
        outer = IP(src=HUB_NBMA, dst=spoke.nbma, ttl=TTL_OUT, id=0,
                   flags="DF" if fwd.flags.DF else 0) / GRE(key_present=1, key=key,
                                                            proto=0x0800) / fwd
        outer = reencode(outer)
        if spoke.sa_out is not None:
            # The hub's SA numbers its packets from 1 in the order it encrypts them.
            spoke.sa_out.sent += 1
            outer = self.esp_packet(spoke, outer, sa=spoke.sa_out, seq=spoke.sa_out.sent)
        self.expect_und.append(Ether(src=UNDERLAY_MAC, dst=GW_MAC) / outer)

    def expect_fragments_to_spoke(self, spoke, inner):
        """The hub fragments before encapsulation (and encryption): the forwarded packet split
        by scapy into pieces that fit the tunnel's IP MTU, each in its own GRE (+ ESP) packet."""
        fwd = forwarded(inner)
        pieces = fragment(fwd, fragsize=(MTU - 20) // 8 * 8)
        assert len(pieces) > 1
        for f in pieces:
            self.expect_to_spoke(spoke, None, reencode(f))
        self.reassembled.append(("underlay", fwd.id, bytes(fwd[IP].payload)))

    def expect_punt(self, reason, data, in_role, tunnel=None, outer_src="0.0.0.0",
                    nexthop=None, aux=None):
        t = "-" if tunnel is None else str(tunnel)
        self.expect_punts.append(" ".join([reason, t, in_role, outer_src, nexthop or "-",
                                           str(aux) if aux is not None else "-",
                                           bytes(data).hex()]))
        self.punts[reason] += 1

    def expect_drop(self, reason):
        self.drops[reason] += 1


def nhrp_from_frr_capture(captures):
    """NHRP Registration Requests an FRR 8.4 spoke sent (tests/data/captures): the GRE payload."""
    pkts = rdpcap(os.path.join(captures, "frr-8.4-spoke-registration-requests.pcap"))
    return [bytes(p[GRE].payload) for p in pkts if GRE in p and p[GRE].proto == 0x2001]


def build(captures):
    s = Scenario()
    lan_port = "lan"

    # ---------------- LAN -> hub ----------------
    # LAN -> spoke (plain GRE): host route, DF copied to the outer header.
    p = s.inner(LAN_HOST, SPOKE2.overlay, size=100, df=True)
    s.from_lan(p)
    s.expect_to_spoke(SPOKE2, p)
    # A prefix behind spoke 2, without DF.
    p = s.inner(LAN_HOST, "10.20.5.5", size=30)
    s.from_lan(p)
    s.expect_to_spoke(SPOKE2, p)
    # TCP SYN into a tunnel with an MSS clamp (tunnel 0: 1360).
    p = s.inner(LAN_HOST, SPOKE2.overlay, proto="tcp_syn", mss=1460)
    s.from_lan(p)
    s.expect_to_spoke(SPOKE2, p, clamp_mss(forwarded(p), MSS))
    # LAN -> IPsec spoke: GRE + ESP (AES-128-GCM), three sizes for the padding.
    for size in (1, 17, 200):
        p = s.inner(LAN_HOST, SPOKE5.overlay, size=size)
        s.from_lan(p)
        s.expect_to_spoke(SPOKE5, p)
    # Larger than the tunnel's IP MTU: DF -> frag_needed, no DF -> fragment (TTL already
    # decremented: the decision follows the FIB lookup).
    p = s.inner(LAN_HOST, SPOKE2.overlay, size=1450 - 28, df=True)
    s.from_lan(p)
    s.expect_punt("frag_needed", forwarded(p), lan_port, aux=MTU)
    p = s.inner(LAN_HOST, SPOKE3.overlay, size=1450 - 28)
    s.from_lan(p)
    s.expect_fragments_to_spoke(SPOKE3, p)
    # The same into IPsec: fragmented before encryption, each fragment its own ESP packet
    # (AES-GCM to spoke 5, AES-CBC + HMAC-SHA-256 to spoke 6); DF still gets frag_needed.
    p = s.inner(LAN_HOST, SPOKE5.overlay, size=1472)
    s.from_lan(p)
    s.expect_fragments_to_spoke(SPOKE5, p)
    p = s.inner(LAN_HOST, SPOKE6.overlay, size=2000 - 28)
    s.from_lan(p)
    s.expect_fragments_to_spoke(SPOKE6, p)
    p = s.inner(LAN_HOST, SPOKE5.overlay, size=1450 - 28, df=True)
    s.from_lan(p)
    s.expect_punt("frag_needed", forwarded(p), lan_port, aux=MTU)
    # LAN -> legacy spoke 7: 3DES-CBC + HMAC-MD5-96, sizes around the 8-byte block, and one
    # fragmented.
    for size in (1, 5, 6, 200, 1372):
        p = s.inner(LAN_HOST, SPOKE7.overlay, size=size)
        s.from_lan(p)
        s.expect_to_spoke(SPOKE7, p)
    p = s.inner(LAN_HOST, SPOKE7.overlay, size=2000 - 28)
    s.from_lan(p)
    s.expect_fragments_to_spoke(SPOKE7, p)
    # Gleans carry the packet as forwarded (TTL - 1): the control lcore sends a held packet
    # as it got it once the next hop resolves (RFC 1812 5.3.1: a forwarded packet's TTL is
    # decremented once). Through a known but unresolved next hop (adjacency 4) first.
    p = s.inner(LAN_HOST, "10.30.1.1")
    s.from_lan(p)
    s.expect_punt("glean", forwarded(p), lan_port, nexthop=INCOMPLETE_NH, aux="tunnel:0")
    # Unknown spoke on tunnel 0's subnet: one glean event, the second packet dropped.
    p = s.inner(LAN_HOST, "10.0.0.9")
    s.from_lan(p)
    s.expect_punt("glean", forwarded(p), lan_port, nexthop="10.0.0.9", aux="tunnel:0")
    s.from_lan(s.inner(LAN_HOST, "10.0.0.9"))
    s.expect_drop("no_adjacency")
    # Unknown neighbour on the LAN's own subnet.
    p = s.inner(LAN_HOST, "172.16.0.77")
    s.from_lan(p)
    s.expect_punt("glean", forwarded(p), lan_port, nexthop="172.16.0.77", aux="port:lan")
    # TTL 1 to an unresolved neighbour: expired, not gleaned.
    p = s.inner(LAN_HOST, "172.16.0.78", ttl=1)
    s.from_lan(p)
    s.expect_punt("ttl_exceeded", p, lan_port)
    # TTL 1: the control lcore answers with ICMP time exceeded.
    p = s.inner(LAN_HOST, SPOKE2.overlay, ttl=1)
    s.from_lan(p)
    s.expect_punt("ttl_exceeded", p, lan_port)
    # Multicast, the hub's own LAN address, ARP.
    p = s.inner(LAN_HOST, "224.0.0.251")
    s.from_lan(p)
    s.expect_punt("multicast", p, lan_port)
    p = s.inner(LAN_HOST, HUB_LAN, proto="icmp")
    s.from_lan(p)
    s.expect_punt("for_us", p, lan_port)
    arp = Ether(src=LAN_HOST_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=1, hwsrc=LAN_HOST_MAC, psrc=LAN_HOST, pdst=HUB_LAN)
    s.lan_in.append(arp)
    s.expect_punt("arp", arp, lan_port)
    # No route, and a discard route.
    s.from_lan(s.inner(LAN_HOST, "198.18.0.1"))
    s.expect_drop("no_route")
    s.from_lan(s.inner(LAN_HOST, "10.40.0.1"))
    s.expect_drop("blackhole")

    # ---------------- underlay -> hub ----------------
    und = "underlay"
    k0 = TUNNELS[0][1]
    k1 = TUNNELS[1][1]
    # Spoke -> LAN (plain GRE), with and without the GRE checksum.
    p = s.inner(SPOKE2.overlay, LAN_HOST, size=80)
    s.from_underlay(s.gre_packet(SPOKE2, p, k0))
    s.expect_to_lan(p)
    p = s.inner(SPOKE2.overlay, LAN_HOST, size=81)
    s.from_underlay(s.gre_packet(SPOKE2, p, k0, checksum=True))
    s.expect_to_lan(p)
    # Inner fragments from spokes (plain GRE, and inside ESP): forwarded as they are, each
    # fragment a packet of its own; the LAN host reassembles.
    for spoke, key in ((SPOKE2, k0), (SPOKE5, k1)):
        p = s.inner(spoke.overlay, LAN_HOST, size=1000)
        pieces = fragment(p, fragsize=520)
        for f in pieces:
            f = reencode(f)
            g = s.gre_packet(spoke, f, key)
            s.from_underlay(s.esp_packet(spoke, g) if spoke.sa_in else g)
            s.expect_to_lan(f)
        s.reassembled.append(("lan", p.id, bytes(p[IP].payload)))
    # Spoke -> spoke through the hub on one tunnel: forwarded, and a Phase 3 redirect event
    # quoting the IP header as sent plus 8 bytes (RFC 792's quote, NHRP Traffic Indication).
    p = s.inner(SPOKE2.overlay, SPOKE3.overlay, size=40)
    s.from_underlay(s.gre_packet(SPOKE2, p, k0))
    s.expect_to_spoke(SPOKE3, p)
    s.expect_punt("redirect", bytes(p)[:28], und, tunnel=0, outer_src=SPOKE2.nbma,
                  nexthop=SPOKE3.overlay)
    # Plain spoke -> IPsec spoke on another tunnel: no redirect, encrypted on the way out.
    p = s.inner(SPOKE2.overlay, SPOKE6.overlay, size=60)
    s.from_underlay(s.gre_packet(SPOKE2, p, k0))
    s.expect_to_spoke(SPOKE6, p)
    # IPsec spoke -> LAN (ESP AES-GCM, then AES-CBC + HMAC-SHA1-96).
    p = s.inner(SPOKE5.overlay, LAN_HOST, size=70)
    s.from_underlay(s.esp_packet(SPOKE5, s.gre_packet(SPOKE5, p, k1)))
    s.expect_to_lan(p)
    p = s.inner(SPOKE6.overlay, LAN_HOST, size=71)
    s.from_underlay(s.esp_packet(SPOKE6, s.gre_packet(SPOKE6, p, k1)))
    s.expect_to_lan(p)
    # Legacy spoke 7 -> LAN (AES-128-CBC + HMAC-MD5-96; one frame: the underlay input is one
    # burst).
    p = s.inner(SPOKE7.overlay, LAN_HOST, size=73)
    s.from_underlay(s.esp_packet(SPOKE7, s.gre_packet(SPOKE7, p, k1)))
    s.expect_to_lan(p)
    # IPsec spoke -> IPsec spoke: decrypt, decap, encap, encrypt with the other SA, redirect.
    p = s.inner(SPOKE5.overlay, SPOKE6.overlay, size=90)
    esp = s.esp_packet(SPOKE5, s.gre_packet(SPOKE5, p, k1))
    s.from_underlay(esp)
    s.expect_to_spoke(SPOKE6, p)
    s.expect_punt("redirect", bytes(p)[:28], und, tunnel=1, outer_src=SPOKE5.nbma,
                  nexthop=SPOKE6.overlay)
    # The same ESP packet again: replayed (RFC 4303 3.4.3).
    s.from_underlay(esp)
    s.expect_drop("esp_replayed")
    # Bad ICV: one bit of the tag flipped; the sequence number stays unused.
    forged = bytearray(bytes(s.esp_packet(SPOKE5, s.gre_packet(
        SPOKE5, s.inner(SPOKE5.overlay, LAN_HOST), k1))))
    forged[-3] ^= 0x10
    s.from_underlay(IP(bytes(forged)))
    s.expect_drop("esp_bad_icv")
    # Truncated ESP: no room for SPI + sequence number; then a known SPI whose payload is
    # shorter than IV + ICV.
    s.from_underlay(reencode(IP(src=SPOKE5.nbma, dst=HUB_NBMA, proto=50) / Raw(b"\x00\x00\x50")))
    s.expect_drop("esp_truncated")
    s.from_underlay(reencode(IP(src=SPOKE5.nbma, dst=HUB_NBMA, proto=50) / Raw(
        SA5_IN.spi.to_bytes(4, "big") + (90).to_bytes(4, "big") + bytes(12))))
    s.expect_drop("esp_truncated")
    # Unknown SPI (valid ESP under an SA the hub does not have).
    s.from_underlay(s.esp_packet(SPOKE5, s.gre_packet(SPOKE5, s.inner(SPOKE5.overlay, LAN_HOST),
                                                      k1), sa=SA_UNKNOWN, seq=1))
    s.expect_drop("esp_unknown_spi")
    # ESP that decrypts to GRE with tunnel 0's key: the SA protects tunnel 1.
    s.from_underlay(s.esp_packet(SPOKE5, s.gre_packet(
        SPOKE5, s.inner(SPOKE5.overlay, LAN_HOST), k0)))
    s.expect_drop("esp_tunnel_mismatch")
    # NHRP inside ESP (an FRR spoke's Registration Request): punted with tunnel and NBMA.
    nhrp = nhrp_from_frr_capture(captures)
    s.from_underlay(s.esp_packet(SPOKE5, s.gre_packet(SPOKE5, nhrp[0], k1, gre_proto=0x2001)))
    s.expect_punt("nhrp", nhrp[0], und, tunnel=1, outer_src=SPOKE5.nbma)
    # Far ahead (accepted), then one left of the 1024-wide window.
    p = s.inner(SPOKE5.overlay, LAN_HOST, size=72)
    s.from_underlay(s.esp_packet(SPOKE5, s.gre_packet(SPOKE5, p, k1), seq=3000))
    s.expect_to_lan(p)
    s.from_underlay(s.esp_packet(SPOKE5, s.gre_packet(
        SPOKE5, s.inner(SPOKE5.overlay, LAN_HOST), k1), seq=SPOKE5.seq + 1))
    s.expect_drop("esp_outside_window")
    # Wrong GRE key; plain GRE on the IPsec tunnel.
    s.from_underlay(s.gre_packet(SPOKE2, s.inner(SPOKE2.overlay, LAN_HOST), 999))
    s.expect_drop("gre_unknown_key")
    s.from_underlay(s.gre_packet(SPOKE5, s.inner(SPOKE5.overlay, LAN_HOST), k1))
    s.expect_drop("gre_unprotected")
    # Plain NHRP on tunnel 0.
    s.from_underlay(s.gre_packet(SPOKE2, nhrp[-1], k0, gre_proto=0x2001))
    s.expect_punt("nhrp", nhrp[-1], und, tunnel=0, outer_src=SPOKE2.nbma)
    # TTL 1 inside the tunnel.
    p = s.inner(SPOKE2.overlay, LAN_HOST, ttl=1)
    s.from_underlay(s.gre_packet(SPOKE2, p, k0))
    s.expect_punt("ttl_exceeded", p, und, tunnel=0, outer_src=SPOKE2.nbma)
    # Unknown spoke (glean), twice.
    p = s.inner(SPOKE2.overlay, "10.0.0.10")
    s.from_underlay(s.gre_packet(SPOKE2, p, k0))
    s.expect_punt("glean", forwarded(p), und, tunnel=0, outer_src=SPOKE2.nbma,
                  nexthop="10.0.0.10", aux="tunnel:0")
    s.from_underlay(s.gre_packet(SPOKE2, s.inner(SPOKE2.overlay, "10.0.0.10"), k0))
    s.expect_drop("no_adjacency")
    # Multicast from a spoke (e.g. a routing protocol hello), and the hub's tunnel address.
    p = s.inner(SPOKE2.overlay, "224.0.0.10")
    s.from_underlay(s.gre_packet(SPOKE2, p, k0))
    s.expect_punt("multicast", p, und, tunnel=0, outer_src=SPOKE2.nbma)
    p = s.inner(SPOKE2.overlay, TUNNELS[0][0], proto="icmp")
    s.from_underlay(s.gre_packet(SPOKE2, p, k0))
    s.expect_punt("for_us", p, und, tunnel=0, outer_src=SPOKE2.nbma)
    # IKE to the hub's NBMA address: not a tunnel packet, the hub's own.
    p = reencode(IP(src=SPOKE5.nbma, dst=HUB_NBMA, id=s.tag()) / UDP(sport=500, dport=500) /
                 Raw(bytes(28)))
    s.from_underlay(p)
    s.expect_punt("for_us", p, und)
    # Bad outer and bad inner IPv4 header checksums.
    bad = bytearray(bytes(s.gre_packet(SPOKE2, s.inner(SPOKE2.overlay, LAN_HOST), k0)))
    bad[10] ^= 0x55
    s.from_underlay(IP(bytes(bad)))
    s.expect_drop("ipv4_bad_checksum")
    inner_bad = bytearray(bytes(s.inner(SPOKE2.overlay, LAN_HOST)))
    inner_bad[10] ^= 0x55
    s.from_underlay(s.gre_packet(SPOKE2, inner_bad, k0))
    s.expect_drop("ipv4_bad_checksum")
    return s


def main():
    out = sys.argv[1]
    captures = os.environ.get("DMVPN_TESTDATA", os.path.join(os.path.dirname(__file__), "..",
                                                             "data"))
    captures = os.path.join(captures, "captures")
    s = build(captures)
    for name, frames in (("lan_in", s.lan_in), ("underlay_in", s.und_in)):
        if len(frames) > RX_BURST:
            sys.exit(f"{name}: {len(frames)} frames; keep each port's input to one burst")
    os.makedirs(out, exist_ok=True)

    def path(n):
        return os.path.join(out, n)

    wrpcap(path("lan_in.pcap"), s.lan_in)
    wrpcap(path("underlay_in.pcap"), s.und_in)
    wrpcap(path("expect_lan.pcap"), s.expect_lan)
    wrpcap(path("expect_underlay.pcap"), s.expect_und)
    with open(path("setup.txt"), "w") as f:
        f.write("\n".join(setup_lines()) + "\n")
    with open(path("expect_punts.txt"), "w") as f:
        f.write("".join(line + "\n" for line in s.expect_punts))
    with open(path("expect_counters.txt"), "w") as f:
        for reason, n in sorted(s.drops.items()):
            f.write(f"drop {reason} {n}\n")
        for reason, n in sorted(s.punts.items()):
            f.write(f"punt {reason} {n}\n")
        f.write(f"rx lan {len(s.lan_in)}\nrx underlay {len(s.und_in)}\n")
        f.write(f"tx lan {len(s.expect_lan)}\ntx underlay {len(s.expect_und)}\n")
    with open(path("expect_reassembled.txt"), "w") as f:
        for role, ident, payload in s.reassembled:
            f.write(f"{role} {ident} {payload.hex()}\n")
    with open(path("esp_sa.uat"), "w") as f:
        for sp in IPSEC_SPOKES:
            f.write(sp.sa_out.uat_line(HUB_NBMA, sp.nbma) + "\n")


if __name__ == "__main__":
    main()
