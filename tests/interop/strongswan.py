"""strongSwan (Debian's charon-systemd 5.9.8) as an IKEv2 peer in network namespaces, for the
IKE-only interop cases that need no qemu (issue 10 part 10b) and for recording reference
captures (scripts/interop/capture-strongswan).

What is here:
  Netns / veth()        network namespaces and veth pairs, removed again by the owner
  Conn                  one swanctl connection (PSK or certificates, proposals, CHILD_SA in
                        transport mode with GRE selectors or childless, fragmentation, DPD,
                        rekey and lifetimes, encapsulation), rendered as swanctl.conf
  Charon                one charon-systemd in a namespace with its own strongswan.conf, VICI
                        socket and log file: start, load, initiate, list SAs (over VICI),
                        rekey, terminate, stop
  Vici                  a minimal VICI client (the protocol of strongSwan's vici plugin)
  ike_keys() / child_keys()
                        the keys charon logs at `ike 4` / `chd 4`, per IKE SA (by unique id)
  ikev2_decryption_table() / esp_sa()
                        Wireshark's key files (the UAT tables ikev2_decryption_table, esp_sa)
  make_ca()             a test CA and end-entity certificates with `pki` (RSA or ECDSA)

Why charon-systemd: Debian 12 ships no /usr/lib/ipsec/charon, and charon-systemd writes no pid
file, so several run side by side with nothing but STRONGSWAN_CONF to tell them apart; its
settings live under `charon-systemd` (falling back to `charon`). It runs in the foreground
and logs where strongswan.conf says (here a file; the journal is off).

This host's kernel has no ESP: a CHILD_SA cannot be installed (xfrm states fail). charon then
answers the CHILD_SA part of IKE_AUTH with NO_PROPOSAL_CHOSEN and keeps the IKE SA (both
sides log the ESP keys first, at `chd 4`); `Conn(childless="force")` (RFC 6023) leaves the
CHILD_SA out altogether. Full CHILD_SAs need the qemu guests (scripts/interop).
"""

import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from checks import Checks  # noqa: F401 (the scripts use ss.Checks)

CHARON = "/usr/sbin/charon-systemd"
SWANCTL = "/usr/sbin/swanctl"
PKI = "/usr/bin/pki"
# openssl (AES-GCM, ECP, X25519 via OpenSSL 3), curve25519 as a fallback for X25519, x509 and
# pem/pkcs1/pkcs8 for certificates and keys, kernel-netlink (the kernel interface; SAs fail
# to install here, see above), socket-default (UDP 500/4500), vici (swanctl).
PLUGINS = ("random nonce openssl pem pkcs1 pkcs8 x509 pubkey revocation constraints curve25519 "
           "gcm aes sha1 sha2 hmac kdf kernel-netlink socket-default vici")


def available():
    """Why the strongSwan cases cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool in (CHARON, SWANCTL, "/usr/sbin/ip", "/usr/bin/tshark"):
        if not Path(tool).exists():
            return f"{tool} is missing (scripts/setup installs it)"
    if not Path("/usr/lib/ipsec/plugins/libstrongswan-openssl.so").exists():
        return "strongSwan's openssl plugin is missing (libstrongswan-standard-plugins)"
    return None


def sh(*args, timeout=30, check=True, env=None):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                       env=env)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed ({r.returncode}): "
                             f"{(r.stderr or r.stdout).strip()}")
    return r


def hand_tap(hub, ns_hub, ns_ss, address):
    """Moves the hub's TAP (its kernel side) from the hub's namespace into ns_ss, with
    address/24, up: charon there talks to the hub across it."""
    sh("ip", "-n", ns_hub.name, "link", "set", hub.iface, "netns", ns_ss.name)
    sh("ip", "-n", ns_ss.name, "addr", "add", f"{address}/24", "dev", hub.iface)
    sh("ip", "-n", ns_ss.name, "link", "set", hub.iface, "up")


def tear_down(check, hub, charon, namespaces, work, hub_log_tail=None, charon_log_tail=None):
    """The end of a hub-and-charon run, whatever happened: charon and the hub stopped (the hub
    must exit 0 on SIGTERM); on a failure the hub's log (its last hub_log_tail characters, all
    of it when None) and, where charon_log_tail is given, that much of charon's without its
    vici lines; the namespaces deleted and `work` removed. Any of them may be None."""
    if charon:
        charon.stop()
    status = hub.stop() if hub else None
    if hub is not None:
        check(status == 0, f"the hub stops cleanly on SIGTERM (status {status})")
        if check.failures:
            log = hub.log()
            print("----- hub log -----\n" + (log[-hub_log_tail:] if hub_log_tail else log),
                  flush=True)
            if charon and charon_log_tail:
                lines = [x for x in charon.log().splitlines() if "vici" not in x]
                print("----- charon log -----\n" + "\n".join(lines)[-charon_log_tail:],
                      flush=True)
    for ns in namespaces:
        if ns:
            ns.delete()
    shutil.rmtree(work, ignore_errors=True)


class Netns:
    """A network namespace with lo up; delete() removes it and every interface in it."""

    def __init__(self, name):
        self.name = name
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
        sh("ip", "netns", "add", name)
        sh("ip", "-n", name, "link", "set", "lo", "up")

    def run(self, *args, timeout=30, check=True):
        return sh("ip", "netns", "exec", self.name, *args, timeout=timeout, check=check)

    def delete(self):
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=30)


def veth(ns_a, if_a, addr_a, ns_b, if_b, addr_b, mtu=None):
    """A veth pair between two namespaces, addresses as "A.B.C.D/LEN", both ends up."""
    sh("ip", "link", "add", if_a, "netns", ns_a.name, "type", "veth", "peer", "name", if_b,
       "netns", ns_b.name)
    for ns, dev, addr in ((ns_a, if_a, addr_a), (ns_b, if_b, addr_b)):
        if addr:
            sh("ip", "-n", ns.name, "addr", "add", addr, "dev", dev)
        if mtu:
            sh("ip", "-n", ns.name, "link", "set", dev, "mtu", str(mtu))
        sh("ip", "-n", ns.name, "link", "set", dev, "up")


@dataclass
class Conn:
    """One IKEv2 connection as swanctl.conf has it. Defaults: what an FRR DMVPN spoke's
    profile asks for (transport mode, GRE between the two addresses), PSK."""
    local_addr: str
    remote_addr: str
    name: str = "dmvpn"
    auth: str = "psk"                 # psk | pubkey
    psk: str = "interop-psk-0123456789"
    local_id: str = ""                # default: the local address (PSK) or the cert's subject
    remote_id: str = ""               # default: the remote address (PSK) or %any (pubkey)
    cert: str = ""                    # pubkey: own certificate (absolute path, PEM)
    key: str = ""                     # pubkey: own private key (PEM; Charon.load() copies it
                                      # into private/ beside swanctl.conf, where swanctl looks)
    cacert: str = ""                  # pubkey: the CA the peer's certificate must chain to
    send_cert: str = "always"         # pubkey: always | ifasked | never
    proposals: str = "aes256-sha256-modp2048"
    esp_proposals: str = "aes256-sha256"
    child: bool = True                # a CHILD_SA (transport, GRE selectors) in the config
    childless: str = ""               # "", allow, force, never (RFC 6023)
    mode: str = "transport"
    ts: str = "dynamic[gre]"
    fragmentation: str = "yes"        # yes | accept | force | no (RFC 7383)
    dpd_delay: int = 0
    dpd_timeout: int = 0
    rekey_time: int = 0               # IKE SA rekey interval, s (0: swanctl's default, 4 h)
    over_time: int = 0
    reauth_time: int = 0
    child_rekey_time: int = 0
    encap: bool = False               # force UDP encapsulation (fake NAT detection)
    mobike: bool = False
    start_action: str = ""            # children: none | trap | start
    extra: dict = field(default_factory=dict)   # more key = value lines for the connection
    version: int = 2                  # 1: IKEv1 (Main Mode + Quick Mode)
    child_extra: dict = field(default_factory=dict)  # more key = value lines for the child

    def render(self):
        l_id = self.local_id or (self.local_addr if self.auth == "psk" else "")
        r_id = self.remote_id or (self.remote_addr if self.auth == "psk" else "%any")
        lines = ["connections {", f"  {self.name} {{", f"    version = {self.version}",
                 f"    local_addrs = {self.local_addr}", f"    remote_addrs = {self.remote_addr}",
                 f"    proposals = {self.proposals}", f"    fragmentation = {self.fragmentation}",
                 f"    mobike = {'yes' if self.mobike else 'no'}",
                 f"    encap = {'yes' if self.encap else 'no'}"]
        if self.childless:
            lines.append(f"    childless = {self.childless}")
        if self.auth == "pubkey":
            lines.append(f"    send_cert = {self.send_cert}")
        for key, val in (("dpd_delay", self.dpd_delay), ("dpd_timeout", self.dpd_timeout),
                         ("rekey_time", self.rekey_time), ("over_time", self.over_time),
                         ("reauth_time", self.reauth_time)):
            if val:
                lines.append(f"    {key} = {val}s")
        for key, val in self.extra.items():
            lines.append(f"    {key} = {val}")
        lines.append(f"    local {{ auth = {self.auth}")
        if l_id:
            lines.append(f'      id = "{l_id}"')
        if self.auth == "pubkey":
            lines.append(f"      certs = {self.cert}")
        lines.append("    }")
        lines.append(f"    remote {{ auth = {self.auth}")
        lines.append(f'      id = "{r_id}"')
        if self.auth == "pubkey" and self.cacert:
            lines.append(f"      cacerts = {self.cacert}")
        lines.append("    }")
        if self.child:
            lines += ["    children {", f"      {self.name} {{", f"        mode = {self.mode}",
                      f"        local_ts = {self.ts}", f"        remote_ts = {self.ts}",
                      f"        esp_proposals = {self.esp_proposals}"]
            if self.child_rekey_time:
                lines.append(f"        rekey_time = {self.child_rekey_time}s")
            if self.start_action:
                lines.append(f"        start_action = {self.start_action}")
            for key, val in self.child_extra.items():
                lines.append(f"        {key} = {val}")
            lines += ["      }", "    }"]
        lines += ["  }", "}", "secrets {"]
        if self.auth == "psk":
            lines.append(f'  ike-{self.name} {{ secret = "{self.psk}" }}')
        lines.append("}")
        return "\n".join(lines) + "\n"


# --- VICI (strongSwan's versatile IKE control interface), the parts used here ---
_CMD_REQUEST, _CMD_RESPONSE, _CMD_UNKNOWN = 0, 1, 2
_EVENT_REGISTER, _EVENT_UNREGISTER, _EVENT_CONFIRM, _EVENT_UNKNOWN, _EVENT = 3, 4, 5, 6, 7
_SECTION_START, _SECTION_END, _KEY_VALUE, _LIST_START, _LIST_ITEM, _LIST_END = 1, 2, 3, 4, 5, 6


def _vici_encode(msg):
    out = bytearray()
    for k, v in msg.items():
        kb = k.encode()
        if isinstance(v, dict):
            out += bytes([_SECTION_START, len(kb)]) + kb + _vici_encode(v) + bytes([_SECTION_END])
        elif isinstance(v, list):
            out += bytes([_LIST_START, len(kb)]) + kb
            for item in v:
                b = str(item).encode()
                out += bytes([_LIST_ITEM]) + struct.pack(">H", len(b)) + b
            out += bytes([_LIST_END])
        else:
            b = v if isinstance(v, bytes) else str(v).encode()
            out += bytes([_KEY_VALUE, len(kb)]) + kb + struct.pack(">H", len(b)) + b
    return bytes(out)


def _vici_decode(data):
    """A message into nested dicts; values as str (bytes where not UTF-8), lists as lists."""
    root = {}
    stack = [root]
    pos = 0
    cur_list = None

    def value(p):
        (n,) = struct.unpack_from(">H", data, p)
        raw = data[p + 2:p + 2 + n]
        try:
            return raw.decode(), p + 2 + n
        except UnicodeDecodeError:
            return raw, p + 2 + n

    while pos < len(data):
        t = data[pos]
        pos += 1
        if t in (_SECTION_START, _KEY_VALUE, _LIST_START):
            n = data[pos]
            name = data[pos + 1:pos + 1 + n].decode()
            pos += 1 + n
            if t == _SECTION_START:
                sec = {}
                stack[-1][name] = sec
                stack.append(sec)
            elif t == _KEY_VALUE:
                stack[-1][name], pos = value(pos)
            else:
                cur_list = stack[-1][name] = []
        elif t == _SECTION_END:
            stack.pop()
        elif t == _LIST_ITEM:
            v, pos = value(pos)
            cur_list.append(v)
        elif t == _LIST_END:
            cur_list = None
        else:
            raise ValueError(f"vici: unknown element type {t}")
    return root


class Vici:
    """One connection to charon's VICI socket."""

    def __init__(self, path, timeout=30):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)

    def close(self):
        self.sock.close()

    def _send(self, ptype, name=None, msg=b""):
        body = bytes([ptype])
        if name is not None:
            nb = name.encode()
            body += bytes([len(nb)]) + nb
        body += msg
        self.sock.sendall(struct.pack(">I", len(body)) + body)

    def _recv(self):
        def exact(n):
            buf = b""
            while len(buf) < n:
                chunk = self.sock.recv(n - len(buf))
                if not chunk:
                    raise ConnectionError("vici: socket closed")
                buf += chunk
            return buf
        (n,) = struct.unpack(">I", exact(4))
        body = exact(n)
        ptype = body[0]
        name, rest = None, body[1:]
        if ptype == _EVENT:
            ln = rest[0]
            name, rest = rest[1:1 + ln].decode(), rest[1 + ln:]
        return ptype, name, rest

    def request(self, cmd, msg=None, stream=None):
        """Sends command `cmd`; with `stream` (an event name) collects the events the command
        streams. Returns (response, [events])."""
        events = []
        if stream:
            self._send(_EVENT_REGISTER, stream)
            ptype, _, _ = self._recv()
            if ptype != _EVENT_CONFIRM:
                raise AssertionError(f"vici: cannot register for {stream}")
        self._send(_CMD_REQUEST, cmd, _vici_encode(msg or {}))
        while True:
            ptype, name, rest = self._recv()
            if ptype == _EVENT:
                events.append(_vici_decode(rest))
                continue
            if ptype == _CMD_UNKNOWN:
                raise AssertionError(f"vici: unknown command {cmd}")
            if ptype != _CMD_RESPONSE:
                raise AssertionError(f"vici: unexpected packet type {ptype}")
            resp = _vici_decode(rest)
            break
        if stream:
            self._send(_EVENT_UNREGISTER, stream)
            self._recv()
        return resp, events


class Charon:
    """One charon-systemd in namespace `ns` (a Netns), everything it writes under `workdir`.

    log_levels: charon's filelog levels; the default logs the derived IKE keys (`ike 4`), the
    ESP keys (`chd 4`) and one line per message with its payloads (`enc 1`)."""

    LOG_LEVELS = {"default": 1, "ike": 4, "chd": 4, "cfg": 2, "knl": 1, "net": 2, "enc": 1,
                  "lib": 1}

    def __init__(self, ns, workdir, name="charon", log_levels=None, settings=""):
        self.ns = ns
        self.name = name
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / "strongswan.conf"
        self.swanctl_conf = self.dir / "swanctl.conf"
        self.socket = self.dir / "charon.vici"
        self.log_path = self.dir / "charon.log"
        self.levels = dict(self.LOG_LEVELS, **(log_levels or {}))
        self.settings = settings   # more lines inside charon-systemd { }
        self.proc = None

    def _write_conf(self):
        levels = "\n".join(f"      {k} = {v}" for k, v in self.levels.items())
        self.conf.write_text(f"""# written by tests/interop/strongswan.py
charon-systemd {{
  load = {PLUGINS}
  install_routes = no
  install_virtual_ip = no
  retransmit_tries = 3
  retransmit_timeout = 2.0
  filelog {{
    charon {{
      path = {self.log_path}
      time_format = %H:%M:%S
      ike_name = yes
      flush_line = yes
      append = yes
{levels}
    }}
  }}
  journal {{
    default = -1
  }}
  plugins {{
    vici {{
      socket = unix://{self.socket}
    }}
  }}
{self.settings}
}}
""")

    def start(self, timeout=20):
        self._write_conf()
        if self.socket.exists():
            self.socket.unlink()
        env = dict(os.environ, STRONGSWAN_CONF=str(self.conf))
        out = open(self.dir / "stdout.log", "w")
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns.name, CHARON], env=env,
                                     stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name}: charon exited with {self.proc.returncode}:\n"
                                     + (self.dir / "stdout.log").read_text() + self.log()[-3000:])
            if self.socket.exists():
                try:
                    Vici(str(self.socket)).close()
                    return
                except OSError:
                    pass
            time.sleep(0.1)
        raise AssertionError(f"{self.name}: no VICI socket after {timeout} s:\n"
                             + self.log()[-3000:])

    def swanctl(self, *args, timeout=60, check=True):
        return sh(SWANCTL, *args, "--uri", f"unix://{self.socket}", timeout=timeout, check=check)

    def load(self, conn):
        """Writes `conn` (a Conn, or swanctl.conf text) and loads connections and secrets."""
        for sub in ("x509", "x509ca", "private"):
            (self.dir / sub).mkdir(exist_ok=True)
        if isinstance(conn, Conn) and conn.key:
            shutil.copy(conn.key, self.dir / "private" / Path(conn.key).name)
        self.swanctl_conf.write_text(conn.render() if isinstance(conn, Conn) else conn)
        return self.swanctl("--load-all", "--noprompt", "--file", self.swanctl_conf).stdout

    def initiate(self, ike, child=None, timeout=30, check=True):
        args = ["--initiate", "--ike", ike, "--timeout", str(timeout)]
        if child:
            args += ["--child", child]
        return self.swanctl(*args, timeout=timeout + 10, check=check)

    def vici(self, cmd, msg=None, stream=None):
        v = Vici(str(self.socket))
        try:
            return v.request(cmd, msg, stream)
        finally:
            v.close()

    def sas(self):
        """{unique id (int): the IKE SA as VICI's list-sa event has it (name added as 'name')}"""
        _, events = self.vici("list-sas", {}, stream="list-sa")
        out = {}
        for ev in events:
            for name, sa in ev.items():
                sa = dict(sa, name=name)
                out[int(sa["uniqueid"])] = sa
        return out

    def wait_sa(self, pred, timeout=30, what="IKE SA"):
        """Polls sas() until pred(sa) holds for one; returns it."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            for sa in self.sas().values():
                if pred(sa):
                    return sa
            time.sleep(0.2)
        raise AssertionError(f"{self.name}: no {what} after {timeout} s: {self.sas()}\n"
                             f"{self.log()[-3000:]}")

    def rekey_ike(self, ike_id):
        resp, _ = self.vici("rekey", {"ike-id": str(ike_id)})
        return resp

    def terminate_ike(self, ike_id, timeout=10):
        resp, _ = self.vici("terminate", {"ike-id": str(ike_id), "timeout": str(timeout * 1000)})
        return resp

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout=10):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)   # `ip netns exec` execs charon: this is charon
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


# --- the keys charon logs ---

_DUMP = re.compile(r"^\S+ \d+\[(\w+)\] (?:<([^>]*)> )?(.+?) => (\d+) bytes @ \S+$")
_HEX = re.compile(r"^\S+ \d+\[\w+\] (?:<[^>]*> )?\s*\d+: ((?:[0-9A-F]{2} ?)+)")


def log_dumps(text):
    """Every `LABEL => N bytes` dump in a charon log: [(group, ike_name, label, bytes)].
    ike_name is "name|uniqueid" (filelog ike_name = yes) or ""."""
    out = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _DUMP.match(lines[i])
        i += 1
        if not m:
            continue
        want = int(m.group(4))
        data = bytearray()
        while len(data) < want and i < len(lines):
            h = _HEX.match(lines[i])
            if not h:
                break
            data += bytes.fromhex(h.group(1).replace(" ", "")[:2 * 16])
            i += 1
        out.append((m.group(1), m.group(2) or "", m.group(3), bytes(data[:want])))
    return out


IKE_KEY_LABELS = {"shared Diffie Hellman secret": "g_ir", "SKEYSEED": "SKEYSEED",
                  "Sk_d secret": "SK_d", "Sk_ai secret": "SK_ai", "Sk_ar secret": "SK_ar",
                  "Sk_ei secret": "SK_ei", "Sk_er secret": "SK_er", "Sk_pi secret": "SK_pi",
                  "Sk_pr secret": "SK_pr"}
CHILD_KEY_LABELS = {"encryption initiator key": "encr_i", "encryption responder key": "encr_r",
                    "integrity initiator key": "integ_i", "integrity responder key": "integ_r"}


def ike_keys(text):
    """The IKE SA key sets a charon log holds, in order: [{"ike": "name|id", "g_ir", "SKEYSEED",
    "SK_d", ..., "SK_pr"}] (bytes). A rekeyed IKE SA is a new entry (its own unique id)."""
    sets = []
    for group, ike, label, data in log_dumps(text):
        key = IKE_KEY_LABELS.get(label)
        if group != "IKE" or key is None:
            continue
        if key == "g_ir" or not sets or key in sets[-1] or sets[-1]["ike"] != ike:
            sets.append({"ike": ike})
        sets[-1][key] = data
    return [s for s in sets if "SK_ei" in s]


def child_keys(text):
    """The CHILD_SA key sets (ESP keys) in a charon log: [{"ike", "encr_i", "encr_r",
    "integ_i"?, "integ_r"?}] (AEAD has no integrity keys)."""
    sets = []
    for group, ike, label, data in log_dumps(text):
        key = CHILD_KEY_LABELS.get(label)
        if group != "CHD" or key is None:
            continue
        if key == "encr_i" or not sets:
            sets.append({"ike": ike})
        sets[-1][key] = data
    return sets


# Wireshark 4.0's names (packet-isakmp.c vs_ikev2_encr_algs / vs_ikev2_integr_algs).
_ENCR_NAMES = {("AES_CBC", 128): "AES-CBC-128 [RFC3602]", ("AES_CBC", 192): "AES-CBC-192 [RFC3602]",
               ("AES_CBC", 256): "AES-CBC-256 [RFC3602]",
               ("AES_GCM_16", 128): "AES-GCM-128 with 16 octet ICV [RFC5282]",
               ("AES_GCM_16", 192): "AES-GCM-192 with 16 octet ICV [RFC5282]",
               ("AES_GCM_16", 256): "AES-GCM-256 with 16 octet ICV [RFC5282]"}
_INTEG_NAMES = {"HMAC_SHA1_96": "HMAC_SHA1_96 [RFC2404]",
                "HMAC_SHA2_256_128": "HMAC_SHA2_256_128 [RFC4868]",
                "HMAC_SHA2_384_192": "HMAC_SHA2_384_192 [RFC4868]",
                "HMAC_SHA2_512_256": "HMAC_SHA2_512_256 [RFC4868]", "": "NONE [RFC4306]"}


def wireshark_encr(encr_alg, keysize):
    return _ENCR_NAMES[(encr_alg, int(keysize))]


def wireshark_integ(integ_alg):
    return _INTEG_NAMES[integ_alg or ""]


def ikev2_decryption_table_row(spi_i, spi_r, keys, encr, integ):
    """One row of Wireshark's ikev2_decryption_table UAT: SPIs as 16 hex digits, keys in hex
    (for AES-GCM SK_e includes the 4-byte salt, as charon derives it), all unquoted as the UAT's
    hex fields want; the algorithms quoted, by the names Wireshark uses (wireshark_encr() /
    wireshark_integ())."""
    hx = lambda b: b.hex() if b else ""
    return (f'{spi_i},{spi_r},{hx(keys["SK_ei"])},{hx(keys["SK_er"])},"{encr}",'
            f'{hx(keys.get("SK_ai"))},{hx(keys.get("SK_ar"))},"{integ}"')


def make_ca(workdir, kind="rsa", names=("spoke-a", "spoke-b"), ca_name="dmvpn interop test CA"):
    """A CA and one end-entity certificate per name, made with strongSwan's pki (kind: rsa =
    RSA-2048, ecdsa = ECDSA P-256). Returns {"ca": cert path, name: (cert path, key path)};
    each end entity's subject is CN=NAME and it carries NAME as a DNS subjectAltName."""
    d = Path(workdir)
    d.mkdir(parents=True, exist_ok=True)
    gen = ["--type", "rsa", "--size", "2048"] if kind == "rsa" else ["--type", "ecdsa", "--size",
                                                                     "256"]
    ktype = "rsa" if kind == "rsa" else "ecdsa"
    ca_key, ca_cert = d / "ca.key.pem", d / "ca.cert.pem"
    ca_key.write_bytes(sh(PKI, "--gen", *gen, "--outform", "pem").stdout.encode())
    r = subprocess.run([PKI, "--self", "--ca", "--lifetime", "3650", "--in", str(ca_key),
                        "--type", ktype, "--dn", f"C=XX, O=dmvpn-hub tests, CN={ca_name}",
                        "--outform", "pem"], capture_output=True, timeout=60, check=True)
    ca_cert.write_bytes(r.stdout)
    out = {"ca": str(ca_cert)}
    for n in names:
        key, cert = d / f"{n}.key.pem", d / f"{n}.cert.pem"
        key.write_bytes(sh(PKI, "--gen", *gen, "--outform", "pem").stdout.encode())
        pub = subprocess.run([PKI, "--pub", "--in", str(key), "--type", ktype],
                             capture_output=True, timeout=60, check=True).stdout
        r = subprocess.run([PKI, "--issue", "--lifetime", "3650", "--cacert", str(ca_cert),
                            "--cakey", str(ca_key), "--dn", f"C=XX, O=dmvpn-hub tests, CN={n}",
                            "--san", n, "--flag", "serverAuth", "--flag", "clientAuth",
                            "--outform", "pem"], input=pub, capture_output=True, timeout=60,
                           check=True)
        cert.write_bytes(r.stdout)
        out[n] = (str(cert), str(key))
    return out


def tshark_ikev2(pcap, table_rows, fields, display_filter="isakmp", extra=()):
    """tshark on `pcap` with `table_rows` as its ikev2_decryption_table (in a private
    configuration directory); returns one list of field values per packet."""
    import tempfile
    with tempfile.TemporaryDirectory() as cfg:
        Path(cfg, "ikev2_decryption_table").write_text(
            "# This file is automatically generated, DO NOT MODIFY.\n" + "\n".join(table_rows)
            + "\n")
        args = ["tshark", "-n", "-r", str(pcap), "-Y", display_filter, "-T", "fields",
                "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=,"]
        for f in fields:
            args += ["-e", f]
        env = dict(os.environ, WIRESHARK_CONFIG_DIR=cfg)
        r = sh(*args, *extra, timeout=120, env=env)
    return [line.split("\t") for line in r.stdout.splitlines()]



# --- RFC 7296 section 2.14 / 2.18, recomputed with Python's hmac (a check on what charon
# logged, and the reference the hub's key schedule is compared against) ---

_PRF_HASH = {"PRF_HMAC_SHA1": "sha1", "PRF_HMAC_SHA2_256": "sha256",
             "PRF_HMAC_SHA2_384": "sha384", "PRF_HMAC_SHA2_512": "sha512"}


def prf_plus(hash_name, key, seed, length):
    import hmac
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(key, t + seed + bytes([i]), hash_name).digest()
        out += t
        i += 1
    return out[:length]


def ike_key_schedule(prf_alg, g_ir, ni, nr, spi_i, spi_r, lengths, sk_d_old=None):
    """SKEYSEED and SK_d, SK_ai, SK_ar, SK_ei, SK_er, SK_pi, SK_pr (RFC 7296 2.14), or for an
    IKE SA made by CREATE_CHILD_SA with the old SA's SK_d (2.18). spi_i/spi_r: 8 bytes each;
    lengths: {"SK_d": n, ...} (SK_a* absent or 0 for AEAD; SK_e* with the GCM salt)."""
    import hmac
    h = _PRF_HASH[prf_alg]
    if sk_d_old is None:
        seed_key = ni + nr
        if prf_alg in ("PRF_AES128_XCBC", "PRF_AES128_CMAC"):
            raise ValueError("XCBC/CMAC PRF not handled here")
        skeyseed = hmac.new(seed_key, g_ir, h).digest()
    else:
        skeyseed = hmac.new(sk_d_old, g_ir + ni + nr, h).digest()
    order = ("SK_d", "SK_ai", "SK_ar", "SK_ei", "SK_er", "SK_pi", "SK_pr")
    total = sum(lengths.get(k, 0) for k in order)
    stream = prf_plus(h, skeyseed, ni + nr + spi_i + spi_r, total)
    out, pos = {"SKEYSEED": skeyseed}, 0
    for k in order:
        n = lengths.get(k, 0)
        if n:
            out[k] = stream[pos:pos + n]
            pos += n
    return out
