#!/usr/bin/python3
"""bench/pktgen kit: make-captures for a small topology, every capture checked with tshark.

to-hub captures: every frame is ESP to the hub's NBMA address and MAC with the SPI of its spoke's
to-hub SA; it decrypts with the SAs make-captures printed (tshark's esp_sa UAT, ICV verified) to
GRE with the tunnel's key carrying IPv4/UDP whose length is one of the size's classes (IMIX in
7:4:1), addressed to another spoke's LAN or to the hub's LAN hosts; per SA the ESP sequence numbers
run 1, 2, 3... (nothing the hub's anti-replay check would drop on the first pass). from-lan
captures: plain IPv4/UDP with good checksums to the spokes' LANs. The hub config passes
dmvpn-hub --check-config. The committed captures in bench/pktgen/captures are what make-captures
writes today. Bad arguments fail with a message."""

import ipaddress
import json
import os
import subprocess
import sys
import tempfile

import yaml

BUILD = os.environ["DMVPN_BUILD"]
SOURCE = os.environ["DMVPN_SOURCE"]
KIT = os.path.join(SOURCE, "bench", "pktgen")
MAKE = os.path.join(KIT, "make-captures")
SPOKESIM = os.path.join(BUILD, "dmvpn-spokesim")
HUB = os.path.join(BUILD, "dmvpn-hub")

GCM_NAME = "AES-GCM with 16 octet ICV [RFC4106]"
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def make(out, *extra):
    return subprocess.run([MAKE, "--out", out, "--spokesim", SPOKESIM, *extra],
                          capture_output=True, text=True, timeout=300)


# Wireshark's esp_sa UAT names of the hub's transforms: (encryption, authentication).
UAT_NAMES = {
    "aes128-gcm16": (GCM_NAME, "NULL"),
    "aes256-gcm16": (GCM_NAME, "NULL"),
    "aes128-cbc-sha1-96": ("AES-CBC [RFC3602]", "HMAC-SHA-1-96 [RFC2404]"),
    "aes256-cbc-sha256-128": ("AES-CBC [RFC3602]", "HMAC-SHA-256-128 [RFC4868]"),
}


def uat_args(sas_file, hub_nbma):
    """One esp_sa UAT line per spoke: its to-hub SA (the hub's inbound); GCM keys carry their
    salt, CBC SAs their HMAC key."""
    with open(sas_file) as f:
        sas = yaml.safe_load(f)
    prof = sas["ipsec-profiles"][0]
    enc, auth = UAT_NAMES[prof["transform"]]
    args = ["-o", "esp.enable_encryption_decode:TRUE", "-o", "esp.enable_authentication_check:TRUE"]
    spi_of = {}
    for sa in prof["manual-sas"]:
        i = sa["inbound"]
        spi_of[sa["peer"]] = i["spi"]
        ikey = f'0x{i["integrity-key"]}' if "integrity-key" in i else ""
        args += ["-o", f'uat:esp_sa:"IPv4","{sa["peer"]}","{hub_nbma}","0x{i["spi"]:08x}",'
                       f'"{enc}","0x{i["key"]}{i.get("salt", "")}","{auth}","{ikey}"']
    return args, spi_of


FIELDS = ["eth.dst", "ip.src", "ip.dst", "ip.proto", "ip.len", "esp.spi", "esp.sequence",
          "esp.icv_good", "gre.key", "gre.proto", "udp.length", "ip.checksum.status"]


def tshark_rows(path, extra):
    cmd = ["tshark", "-r", path, "-n", "-o", "ip.check_checksum:TRUE", *extra, "-T", "fields",
           "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=,"]
    for f in FIELDS:
        cmd += ["-e", f]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        check(False, f"tshark reads {os.path.basename(path)}: {p.stderr.strip()}")
        return []
    rows = []
    for line in p.stdout.splitlines():
        cols = line.split("\t")
        cols += [""] * (len(FIELDS) - len(cols))
        rows.append({k: v.split(",") if v else [] for k, v in zip(FIELDS, cols)})
    return rows


def in_net(addr, net):
    return ipaddress.ip_address(addr) in ipaddress.ip_network(net)


def check_to_hub(out, cap, man):
    path = os.path.join(out, cap["file"])
    hub = man["hub"]
    uat, spi_of = uat_args(os.path.join(out, "hub-sas.yaml"), hub["nbma"])
    rows = tshark_rows(path, uat)
    name = cap["file"]
    check(len(rows) == cap["frames"] and rows, f"{name}: {len(rows)} frames as the manifest says")
    sizes = [s for s, _ in {"64": [(64, 7)], "imix": [(64, 7), (576, 4), (1400, 1)],
                            "1400": [(1400, 1)]}[name[len("to-hub-"):-len(".pcap")]]]
    bad = {k: 0 for k in ("mac", "outer", "spi", "icv", "gre", "inner", "size", "dst")}
    seqs = {}
    by_size = {}
    for r in rows:
        if r["eth.dst"] != [hub["wan_mac"]]:
            bad["mac"] += 1
        ip_src, ip_dst, proto = r["ip.src"], r["ip.dst"], r["ip.proto"]
        if len(ip_dst) < 1 or ip_dst[0] != hub["nbma"] or proto[:1] != ["50"]:
            bad["outer"] += 1
            continue
        spi = int(r["esp.spi"][0], 16) if r["esp.spi"] else -1
        if spi_of.get(ip_src[0]) != spi:
            bad["spi"] += 1
        if r["esp.icv_good"] != ["1"]:
            bad["icv"] += 1
            continue
        want_key = [f"0x{man['gre_key']:08x}"] if man["gre_key"] is not None else []
        if r["gre.key"] != want_key or r["gre.proto"] != ["0x0800"]:
            bad["gre"] += 1
        # Decrypted: a second IPv4 header (the inner packet) carrying UDP.
        if len(ip_dst) != 2 or proto[1:] != ["17"] or not r["udp.length"]:
            bad["inner"] += 1
            continue
        inner_len = int(r["ip.len"][1])
        if inner_len not in sizes:
            bad["size"] += 1
        by_size[inner_len] = by_size.get(inner_len, 0) + 1
        dst = ip_dst[1]
        to_spoke = in_net(dst, man["prefixes"]["spoke_lans"])
        to_lan = in_net(dst, man["prefixes"]["lan_hosts"])
        if not (to_spoke or to_lan) or ip_src[1] == dst:
            bad["dst"] += 1
        seqs.setdefault(spi, []).append(int(r["esp.sequence"][0]))
    for k, v in bad.items():
        check(v == 0, f"{name}: no frame fails the {k} check ({v} do)")
    check(len(seqs) == len(spi_of), f"{name}: every spoke's SA sends ({len(seqs)} of {len(spi_of)})")
    check(all(s == list(range(1, len(s) + 1)) for s in seqs.values()),
          f"{name}: per SA the ESP sequence numbers are 1, 2, 3... with no repeat")
    if len(sizes) == 3:
        n = len(rows)
        want = {64: n * 7 / 12, 576: n * 4 / 12, 1400: n / 12}
        check(all(abs(by_size.get(s, 0) - w) <= 2 for s, w in want.items()),
              f"{name}: IMIX counts {by_size} near 7:4:1 of {n}")
    lan_groups = [r for r in cap["runs"] if r["group"] == "spoke-to-lan"]
    s2s_groups = [r for r in cap["runs"] if r["group"] == "spoke-to-spoke"]
    check(bool(lan_groups) and bool(s2s_groups), f"{name}: both spoke-to-spoke and spoke-to-LAN traffic")


def check_from_lan(out, cap, man):
    name = cap["file"]
    rows = tshark_rows(os.path.join(out, name), [])
    check(len(rows) == cap["frames"] and rows, f"{name}: {len(rows)} frames as the manifest says")
    ok = sum(1 for r in rows
             if r["eth.dst"] == [man["hub"]["lan_mac"]] and len(r["ip.dst"]) == 1
             and in_net(r["ip.src"][0], man["prefixes"]["lan_hosts"])
             and in_net(r["ip.dst"][0], man["prefixes"]["spoke_lans"])
             and r["ip.proto"] == ["17"] and r["ip.checksum.status"] == ["1"]
             and int(r["udp.length"][0]) == int(r["ip.len"][0]) - 20)
    check(ok == len(rows), f"{name}: plain IPv4/UDP to the spokes' LANs, good checksums ({ok}/{len(rows)})")


def check_wrong_keys_fail(out, man):
    """The decryption check can fail: with another seed's keys no frame authenticates."""
    other = os.path.join(out, "other-sas.yaml")
    r = subprocess.run([SPOKESIM, "--spokes", str(man["spokes"]), "--esp", man["esp"],
                        "--sa-seed", str(man["sa_seed"] + 1), "--nbma-prefix", man["prefixes"]["nbma"],
                        "--hub-nbma", man["hub"]["nbma"], "--print-sa-yaml"],
                       capture_output=True, text=True, timeout=60)
    with open(other, "w") as f:
        f.write(r.stdout)
    uat, _ = uat_args(other, man["hub"]["nbma"])
    rows = tshark_rows(os.path.join(out, "to-hub-64.pcap"), uat)
    # A wrong key still "decrypts" into garbage that is now and then dissected as GRE (its last
    # byte read as next header 47): only the authentic ICV or the tunnel's own key count.
    key = [f"0x{man['gre_key']:08x}"]
    good = sum(1 for row in rows if row["esp.icv_good"] == ["1"] or row["gre.key"] == key)
    check(rows and good == 0, f"with seed {man['sa_seed'] + 1}'s keys no frame decrypts ({good} do)")


LUA_MOCK = r"""
-- A stand-in for pktgen's Lua module: a clock moved by delay(), ports that send RATE packets a
-- second while started (until COUNT when set), and the hub returning 60% on port 0, 40% on 1.
local shape, rate = SHAPE, 1000000
local clock, started, sent, count = 0, nil, 0, 0
calls = {}
local function log(...) calls[#calls + 1] = table.concat({...}, " ") end
local function advance(ms)
    for _ = 1, ms do
        clock = clock + 1
        if started and (count == 0 or sent < count) then sent = sent + rate / 1000 end
    end
end
local function stats_of(pid)
    local c
    if pid == 0 then
        c = {opackets = sent, obytes = sent * 142, ipackets = sent * 0.6, ibytes = sent * 0.6 * 142}
    else
        c = {opackets = 0, obytes = 0, ipackets = sent * 0.4, ibytes = sent * 0.4 * 78}
    end
    c.imissed, c.ierrors, c.oerrors = 0, 0, 0
    if shape == "new" then return {curr = c} end
    return c
end
pktgen = {
    set = function(p, what, v) log("set", p, what, tostring(v)); if what == "count" then count = v end end,
    set_ipaddr = function(p, w, a) log("set_ipaddr", p, w, a) end,
    process = function(p, s) log("process", p, s) end,
    pcap = function(p, s) log("pcap", p, s) end,
    send_arp = function(p, w) log("send_arp", p, w) end,
    clr = function() log("clr") end,
    delay = function(ms) advance(ms) end,
    start = function(p) log("start", p); started = true end,
    stop = function(p) log("stop", p); started = nil end,
    isSending = function(p) return {[0] = (started and (count == 0 or sent < count)) and "y" or "n"} end,
    portStats = function(list, kind)
        if shape == "old" and kind ~= "port" then error("wrong number of arguments") end
        if shape == "new" and kind ~= nil then error("wrong number of arguments") end
        local t = {n = 0}
        for p in string.gmatch(list, "%d+") do t[tonumber(p)] = stats_of(tonumber(p)); t.n = t.n + 1 end
        return t
    end,
    quit = function() log("quit") end,
}
dofile(SCRIPT)
for _, c in ipairs(calls) do print("CALL " .. c) end
"""


def check_lua(out):
    """dmvpn.lua against a mock of pktgen's Lua API (no pktgen here): the calls it makes and the
    rates it reports, for both shapes of portStats and for a counted (one-pass) run."""
    lua = "/usr/bin/lua5.4"
    if not os.access(lua, os.X_OK):
        print("skip dmvpn.lua mock run: lua5.4 is not installed (apt-get install lua5.4)")
        return
    script = os.path.join(KIT, "dmvpn.lua")
    for shape, count, seconds, want_s in (("old", 0, 5, 5), ("new", 0, 3, 3), ("old", 2500000, 10, 3)):
        mock = os.path.join(out, f"mock-{shape}-{count}.lua")
        with open(mock, "w") as f:
            f.write(LUA_MOCK.replace("SHAPE", f'"{shape}"').replace("SCRIPT", json.dumps(script)))
        result = os.path.join(out, f"result-{shape}-{count}.json")
        env = dict(os.environ, DMVPN_SECONDS=str(seconds), DMVPN_RATE="50", DMVPN_COUNT=str(count),
                   DMVPN_RESULT=result, DMVPN_QUIT="1",
                   DMVPN_PRIME="0")  # priming is ARP's business: real pktgen, bench_pktgen_quick
        r = subprocess.run([lua, mock], capture_output=True, text=True, env=env, timeout=60)
        what = f"dmvpn.lua ({shape} portStats, count {count})"
        check(r.returncode == 0, f"{what} runs {r.stderr.strip()}")
        if r.returncode != 0:
            continue
        calls = [l[5:] for l in r.stdout.splitlines() if l.startswith("CALL ")]
        for want in ("pcap 0 on", "set 0 rate 50", f"set 0 count {count}", "set_ipaddr 0 src 198.18.0.2/24",
                     "set_ipaddr 1 src 198.19.0.2/24", "process 0 on", "process 1 on", "start 0", "stop 0",
                     "quit"):
            check(want in calls, f"{what} calls pktgen.{want}")
        with open(result) as f:
            res = json.loads(f.readline())
        p0, p1 = res["ports"]["0"], res["ports"]["1"]
        sent = count if count else 1_000_000 * want_s
        check(res["seconds"] == want_s, f"{what} sampled {res['seconds']} s, expected {want_s}")
        check(p0["tx_packets"] == sent and p0["rx_packets"] == sent * 0.6 and p1["rx_packets"] == sent * 0.4,
              f"{what} totals: tx {p0['tx_packets']}, rx {p0['rx_packets']} + {p1['rx_packets']}")
        check(abs(p0["tx_pps"] - sent / want_s) < 1 and abs(p1["rx_pps"] - sent * 0.4 / want_s) < 1,
              f"{what} rates: tx {p0['tx_pps']} pps, rx1 {p1['rx_pps']} pps")


def check_hub_config(out):
    path = os.path.join(out, "hub.yaml")
    if not os.access(HUB, os.X_OK):
        print(f"skip dmvpn-hub --check-config: {HUB} is not built")
        return
    help_text = subprocess.run([HUB, "--help"], capture_output=True, text=True).stdout
    if "--check-config" not in help_text:
        print(f"skip dmvpn-hub --check-config: {HUB} has no --check-config option")
        return
    r = subprocess.run([HUB, "--check-config", path], capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, f"dmvpn-hub --check-config accepts the generated hub.yaml "
                             f"({(r.stdout + r.stderr).strip()})")


def check_committed():
    committed = os.path.join(KIT, "captures")
    man_path = os.path.join(committed, "manifest.json")
    if not os.path.exists(man_path):
        check(False, "bench/pktgen/captures/manifest.json exists")
        return
    with open(man_path) as f:
        man = json.load(f)
    # The manifest records the arguments; regenerate with the same ones and compare bytes.
    argv = man["generator"].split()[1:]
    i = argv.index("--out")
    del argv[i:i + 2]
    with tempfile.TemporaryDirectory(prefix="pktgen-kit-") as d:
        r = make(d, *argv)
        check(r.returncode == 0, "make-captures regenerates the committed set " + r.stderr.strip())
        if r.returncode != 0:
            return
        names = sorted(n for n in os.listdir(committed) if n.endswith((".pcap", ".yaml")))
        same = [n for n in names if os.path.exists(os.path.join(d, n))
                and open(os.path.join(d, n), "rb").read() == open(os.path.join(committed, n), "rb").read()]
        check(same == names and names,
              f"committed captures are current ({len(same)}/{len(names)} identical; regenerate "
              f"with: {man['generator']})")


def main():
    if not os.access(SPOKESIM, os.X_OK):
        print(f"FAIL {SPOKESIM} is not built")
        return 1
    with tempfile.TemporaryDirectory(prefix="pktgen-kit-") as d:
        r = make(d, "--spokes", "12", "--gre-key", "77", "--esp", "aes128-cbc-sha1-96", "--sa-seed", "9",
                 "--frames", "64=96,imix=120,1400=24")
        check(r.returncode == 0, "make-captures runs " + r.stderr.strip())
        if r.returncode != 0:
            return 1
        with open(os.path.join(d, "manifest.json")) as f:
            man = json.load(f)
        check(man["hub"]["nbma"] == "198.18.0.1" and man["gre_key"] == 77, "manifest names the topology")
        for cap in man["captures"]:
            if cap["file"].startswith("to-hub-"):
                check_to_hub(d, cap, man)
            else:
                check_from_lan(d, cap, man)
        check_hub_config(d)
        check_wrong_keys_fail(d, man)
        check_lua(d)

        r = make(os.path.join(d, "bad"), "--spokes", "4", "--sizes", "imix")
        check(r.returncode == 2 and "needs at least" in r.stderr,
              "too few spokes for IMIX is refused with a reason")
        r = make(os.path.join(d, "bad"), "--sizes", "128")
        check(r.returncode == 2 and "--sizes" in r.stderr, "an unknown size is refused")
    check_committed()
    print(f"{len(failures)} failed" if failures else "all passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
