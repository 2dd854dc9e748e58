#!/usr/bin/python3
"""dmvpn-hub as a process on a net_pcap port: ARP, ping and an FRR spoke's Registration Request
are answered; ICMP errors it originates are rate-limited; dmvpnctl lists the spoke; reload applies a good file and refuses a bad one; a
second hub on the same socket and a broken port are refused with advice; SIGTERM exits 0.
--check-config accepts the shipped examples and reports errors as file:line:col."""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

from scapy.all import ARP, ICMP, IP, UDP, Ether, Raw, rdpcap, wrpcap  # noqa: E402
from hub_checks import CTL, HUB, SOURCE, check, ctl, failures, wait_for  # noqa: E402

DATA = os.environ["DMVPN_TESTDATA"]

CONFIG = """\
hub:
  control-lcore: 0
  worker-lcores: [1]
  eal-args: [--no-huge, -m, "512", --no-pci, --no-shconf]
  worker-idle-sleep-us: 50
  icmp-error-rate: 2
ports:
  - name: underlay
    device: net_pcap0,rx_pcap={d}/in.pcap,tx_pcap={d}/out0.pcap,tx_pcap={d}/out1.pcap
    role: underlay
    address: 198.51.100.1/24
    allow-transit: true  # the Time Exceeded cases route a host's packets across the underlay
tunnels:
  - name: tun0
    port: underlay
    overlay-address: 10.255.0.1
    overlay-prefix: 10.255.0.0/24
    gre-key: 42
    nhrp:
      network-id: 1
      holdtime: 600
{nhrp}{routes}management:
  socket: {d}/hub.sock
"""


def check_config_cases(d):
    for ex in sorted(n for n in os.listdir(os.path.join(SOURCE, "config", "examples"))
                     if n.endswith(".yaml")):  # frr/ holds FRR's own files
        path = os.path.join(SOURCE, "config", "examples", ex)
        r = subprocess.run([HUB, "--check-config", path], capture_output=True, text=True)
        check(r.returncode == 0 and "valid" in r.stdout, "--check-config accepts " + ex)
    bad = os.path.join(d, "bad.yaml")
    with open(bad, "w") as f:
        f.write("hub:\n  control-lcore: zero\nports: []\n")
    r = subprocess.run([HUB, "--check-config", bad], capture_output=True, text=True)
    check(r.returncode != 0, "--check-config refuses a bad file")
    check(bad + ":2:18:" in r.stderr, "the error names file:line:col (" + r.stderr.strip()[:80] + ")")
    r = subprocess.run([HUB, "--bogus"], capture_output=True, text=True)
    check(r.returncode == 2 and "unknown option" in r.stderr, "an unknown option is refused")


def make_input(d):
    frr = rdpcap(os.path.join(DATA, "captures", "frr-8.4-spoke-registration-requests.pcap"))
    reg = frr[0]
    spoke = reg[Ether].src
    frames = [
        Ether(src=spoke, dst="ff:ff:ff:ff:ff:ff") /
        ARP(op=1, hwsrc=spoke, psrc="198.51.100.2", pdst="198.51.100.1"),
        # Not the hub's address: no answer.
        Ether(src=spoke, dst="ff:ff:ff:ff:ff:ff") /
        ARP(op=1, hwsrc=spoke, psrc="198.51.100.2", pdst="198.51.100.77"),
        Ether(src=spoke, dst="02:70:63:61:70:00") /
        IP(src="198.51.100.2", dst="198.51.100.1") / ICMP(id=7, seq=1) / Raw(b"hello hub"),
        reg,
    ]
    # Five packets whose TTL runs out at the hub (to a host on the connected subnet): with
    # hub.icmp-error-rate 2 (a burst of 2), two Time Exceeded go back and three are held back.
    frames += [Ether(src=spoke, dst="02:70:63:61:70:00") /
               IP(src="198.51.100.2", dst="198.51.100.50", ttl=1) / UDP(sport=9, dport=9) /
               Raw(b"ttl %d" % i) for i in range(5)]
    wrpcap(os.path.join(d, "in.pcap"), frames)
    return spoke


def write_config(d, routes="", nhrp=""):
    with open(os.path.join(d, "hub.yaml"), "w") as f:
        f.write(CONFIG.format(d=d, routes=routes, nhrp=nhrp))


def main():
    d = tempfile.mkdtemp(prefix="hubtest-")
    check_config_cases(d)
    spoke_mac = make_input(d)
    write_config(d)
    sock = os.path.join(d, "hub.sock")
    log = open(os.path.join(d, "hub.log"), "w+")
    prefix = "hubtest-%d" % os.getpid()
    hub = subprocess.Popen([HUB, "--config", os.path.join(d, "hub.yaml"), "--",
                            "--file-prefix", prefix], stdout=log, stderr=subprocess.STDOUT)
    try:
        up = wait_for(lambda: os.path.exists(sock) and ctl(sock, "help").returncode == 0, 60)
        check(up is not None, "the hub starts and answers on its management socket")
        if not up:
            return

        def spoke_listed():
            r = ctl(sock, "show", "nhrp", "--json")
            if r.returncode != 0:
                return None
            entries = json.loads(r.stdout)
            return [e for e in entries if e["protocol"] == "10.255.0.2/32"] or None

        listed = wait_for(spoke_listed, 20)
        check(listed is not None, "show nhrp --json lists the FRR spoke 10.255.0.2")
        if listed:
            check(listed[0]["nbma"] == "198.51.100.2" and listed[0]["type"] == "dynamic",
                  "the spoke is dynamic at NBMA 198.51.100.2")

        r = ctl(sock, "show", "interfaces", "--json")
        ifs = json.loads(r.stdout)
        check(ifs["ports"][0]["name"] == "underlay" and ifs["tunnels"][0]["gre_key"] == 42,
              "show interfaces --json names the port and the tunnel")
        hub_mac = ifs["ports"][0]["mac"]
        stats = json.loads(ctl(sock, "show", "stats", "--json").stdout)
        check(stats["control"]["icmp_echo_replies"] == 1, "one echo reply counted")
        check(stats["workers"][0]["idle_sleeps"] > 0,
              "the idle worker sleeps between passes (worker-idle-sleep-us)")
        check(stats["punts"]["nhrp"]["handled"] == 1 and stats["punts"]["arp"]["handled"] == 2,
              "punts handled by reason")
        check(stats["punts"]["ttl_exceeded"]["handled"] == 5 and
              stats["control"]["icmp_errors_sent"] == 2 and
              stats["control"]["icmp_errors_limited"] == 3,
              "ICMP errors rate-limited: %d sent, %d held back of 5 (hub.icmp-error-rate 2)" %
              (stats["control"]["icmp_errors_sent"], stats["control"]["icmp_errors_limited"]))
        check(stats["punt_policing"]["ike"]["rate"] == 5000 and
              all(v["policed"] == 0 for v in stats["punt_policing"].values()) and
              stats["control_loop"]["passes"] > 0,
              "show stats --json: punt budgets per class (nothing policed) and loop times")
        # Where the busy passes went (pass_profile.hpp): only the items that ran, each counted.
        prof = stats.get("pass_profile", {})
        check(all(prof.get(k, {}).get("count", 0) > 0
                  for k in ("punts", "timers", "mgmt", "tick_nhrp", "tick_nbma_paths",
                            "tick_second", "tick_telemetry")) and
              "ike_install" not in prof and
              all(v["p50_ns"] <= v["p99_ns"] <= v["max_ns"] and
                  v["total_us"] * 1000 + 1000 >= v["max_ns"] for v in prof.values()),
              "show stats --json: pass_profile has the stages and tick items that ran, no others "
              "(%s)" % sorted(prof))
        r = ctl(sock, "show", "stats")
        check(r.returncode == 0 and "where the busy passes went:" in r.stdout and
              "  tick_nhrp: " in r.stdout, "show stats: where the busy passes went")
        r = ctl(sock, "show", "dmvpn")
        check(r.returncode == 0 and "198.51.100.2" in r.stdout, "show dmvpn lists the peer")
        r = ctl(sock, "show", "ip", "route", "--json")
        routes = {x["prefix"]: x for x in json.loads(r.stdout)["routes"]}
        spoke_rt = routes.get("10.255.0.2/32", {})
        check(routes.get("10.255.0.0/24", {}).get("code") == "C" and
              routes.get("10.255.0.1/32", {}).get("code") == "L" and
              spoke_rt.get("code") == "H" and spoke_rt.get("distance") == 250 and
              spoke_rt.get("nbma") == "198.51.100.2",
              "show ip route --json: the tunnel subnet (C), the hub's address (L) and the "
              "registered spoke (H, 250, at its NBMA address)")
        r = ctl(sock, "show", "ip", "route", "10.255.0.2")
        check(r.returncode == 0 and "H        10.255.0.2/32 [250/1] via 10.255.0.2" in r.stdout,
              "show ip route ADDRESS: the spoke's route in IOS's layout")
        arp = json.loads(ctl(sock, "show", "arp", "--json").stdout)
        check(any(a["address"] == "198.51.100.2" and a["mac"] == spoke_mac for a in arp),
              "the spoke's MAC was learned from its ARP request")
        # The same data through DPDK telemetry, served from the control lcore's snapshot.
        tel = "/var/run/dpdk/%s/dpdk_telemetry.v2" % prefix
        try:
            t = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            t.connect(tel)
            t.recv(16384)
            time.sleep(1.2)  # the snapshot is refreshed every second

            def tel_call(cmd):
                t.send(cmd.encode())
                return json.loads(t.recv(65536))[cmd]

            lines = tel_call("/dmvpn/nhrp")
            check(any("10.255.0.2/32" in l and "198.51.100.2" in l for l in lines),
                  "telemetry /dmvpn/nhrp lists the spoke")
            prof = json.loads(ctl(sock, "show", "stats", "--json").stdout)["pass_profile"]
            check(prof.get("tick_telemetry_views", {}).get("count", 0) >= 1,
                  "the per-entry views rendered on a tick because a reader asked (%s)" %
                  prof.get("tick_telemetry_views"))
            tstats = tel_call("/dmvpn/stats")
            check(tstats.get("nhrp_registration_replies_sent") == 1 and
                  tstats.get("icmp_echo_replies") == 1, "telemetry /dmvpn/stats counts")
            t.close()
        except OSError as e:
            check(False, "telemetry socket %s: %s" % (tel, e))
        r = ctl(sock, "show", "bogus")
        check(r.returncode != 0 and "unknown command" in r.stderr, "an unknown command is refused")

        # Reload: a good file with a new route, then a broken one, which changes nothing.
        routes_before = stats["control"]["routes"]
        write_config(d, "routes:\n  - prefix: 172.16.9.0/24\n    via: 10.255.0.2\n")
        r = ctl(sock, "reload")
        check(r.returncode == 0 and "routes changed" in r.stdout, "reload applies a new route")
        stats = json.loads(ctl(sock, "show", "stats", "--json").stdout)
        check(stats["control"]["routes"] == routes_before + 1, "the route is installed")
        r = ctl(sock, "show", "ip", "route", "172.16.9.0/24", "--json")
        st = json.loads(r.stdout)["routes"] if r.returncode == 0 else []
        check(len(st) == 1 and st[0]["code"] == "S" and st[0]["next_hop"] == "10.255.0.2" and
              st[0]["nbma"] == "198.51.100.2",
              "show ip route PREFIX: the static route, its next hop resolved through NHRP")
        with open(os.path.join(d, "hub.yaml"), "a") as f:
            f.write("tunnels: [oops\n")
        r = ctl(sock, "reload")
        check(r.returncode != 0 and "rejected" in r.stderr and "hub.yaml:" in r.stderr,
              "a broken file is rejected with its reason")
        check(spoke_listed() is not None, "the spoke survives both reloads")
        write_config(d)
        hub.send_signal(signal.SIGHUP)
        gone = wait_for(lambda: json.loads(ctl(sock, "show", "stats", "--json").stdout)
                        ["control"]["routes"] == routes_before, 10)
        check(gone is not None, "SIGHUP reloads the file (the route is gone again)")
        check(spoke_listed() is not None, "the spoke survives the SIGHUP reload")

        # A change to the tunnel's NHRP settings restarts the NHRP server: the registration is
        # carried over, so the spoke stays listed, dynamic, at its NBMA address.
        write_config(d, nhrp="      redirect: true\n      redirect-rate-limit: 50\n")
        r = ctl(sock, "reload")
        check(r.returncode == 0 and "NHRP server restarted, 1 registration carried over"
              in r.stdout, "an NHRP change restarts the server and carries the spoke over (%s)"
              % r.stdout.strip())
        listed = spoke_listed()
        check(listed is not None and listed[0]["nbma"] == "198.51.100.2" and
              listed[0]["type"] == "dynamic", "the spoke is still registered after the restart")

        # A second hub on the same socket is refused before it touches DPDK.
        r = subprocess.run([HUB, "--config", os.path.join(d, "hub.yaml"), "--", "--file-prefix",
                            prefix + "b"], capture_output=True, text=True, timeout=60)
        check(r.returncode == 1 and "another dmvpn-hub answers" in r.stderr,
              "a second hub on the same socket is refused")
    finally:
        hub.send_signal(signal.SIGTERM)
        try:
            rc = hub.wait(timeout=30)
        except subprocess.TimeoutExpired:
            hub.kill()
            rc = None
        log.seek(0)
        text = log.read()
        check(rc == 0, "SIGTERM stops the hub with status 0 (got %s)" % rc)
        # The operator's events, once each, on the one logging path (plain: timestamp, level).
        up = [l for l in text.splitlines() if "spoke 10.255.0.2/32 up on tun0 at NBMA "
              "198.51.100.2: registered" in l]
        check(len(up) == 1 and " dmvpn-hub: notice: " in up[0],
              "the log says the spoke came up, once, at notice: %s" % up)
        check(any(": error: config reload refused, the running topology is unchanged" in l
                  for l in text.splitlines()), "the log says the broken reload was refused")
        check(any(": notice: config reload: applied; routes changed" in l
                  for l in text.splitlines()), "the log says the good reload was applied")
        if rc != 0:
            print(text)

    out = rdpcap(os.path.join(d, "out1.pcap"))
    arp_replies = [p for p in out if ARP in p and p[ARP].op == 2]
    check(len(arp_replies) == 1 and arp_replies[0][ARP].psrc == "198.51.100.1" and
          arp_replies[0][ARP].hwsrc == hub_mac and arp_replies[0][ARP].pdst == "198.51.100.2",
          "one ARP reply, for the hub's own address, with the port's MAC")
    exceeded = [p for f in ("out0.pcap", "out1.pcap") for p in rdpcap(os.path.join(d, f))
                if ICMP in p and p[ICMP].type == 11]
    check(len(exceeded) == 2 and all(p[IP].dst == "198.51.100.2" for p in exceeded),
          "two ICMP Time Exceeded on the wire (%d)" % len(exceeded))
    echo = [p for p in out if ICMP in p and p[ICMP].type == 0]
    check(len(echo) == 1 and echo[0][IP].dst == "198.51.100.2" and echo[0][ICMP].id == 7 and
          bytes(echo[0][ICMP].payload) == b"hello hub" and echo[0][Ether].dst == spoke_mac,
          "the echo reply goes back to the spoke's MAC with id and data")
    # The Registration Reply, read by tshark: type 4, CIE code 0, GRE key 42.
    r = subprocess.run(["tshark", "-r", os.path.join(d, "out1.pcap"), "-Y", "nhrp", "-T",
                        "fields", "-e", "gre.key", "-e", "nhrp.hdr.op.type", "-e", "nhrp.code",
                        "-e", "ip.dst", "-e", "nhrp.src.prot.addr"],
                       capture_output=True, text=True)
    rows = [l.split("\t") for l in r.stdout.splitlines() if l.strip()]
    check(len(rows) == 1, "one NHRP packet sent (%d)" % len(rows))
    if rows:
        key, op, codes, dst, src_proto = rows[0]
        check(int(key, 0) == 42 and op == "4" and codes.split(",")[0] == "0" and
              dst == "198.51.100.2" and src_proto == "10.255.0.2",
              "a Registration Reply, code 0, to the spoke in GRE key 42: " + "|".join(rows[0]))

    # A port that cannot be opened says so and what to do, and the hub exits 1.
    broken = CONFIG.format(d=d, routes="", nhrp="").replace(d + "/in.pcap", d + "/missing.pcap")
    broken = broken.replace("hub.sock", "hub2.sock")
    with open(os.path.join(d, "broken.yaml"), "w") as f:
        f.write(broken)
    r = subprocess.run([HUB, "--config", os.path.join(d, "broken.yaml"), "--", "--file-prefix",
                        prefix + "c"], capture_output=True, text=True, timeout=60)
    check(r.returncode == 1 and 'port "underlay"' in r.stderr and "probe" in r.stderr,
          "an unusable port is reported with advice: " + r.stderr.strip().splitlines()[-1][:120])

    print("%d failure(s)" % len(failures))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
