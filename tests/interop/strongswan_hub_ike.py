#!/usr/bin/python3
"""strongSwan keys an SA with our hub by IKEv2 (issue 10): build/dmvpn-hub on
config/examples/interop.yaml plus an IPsec profile with `ike:` (PSK) on its tunnel, its net_tap
interface moved into a strongSwan namespace as in strongswan_hub_tap.py (198.51.100.50/24 on
the hub's underlay segment).

Asserts: charon-systemd initiates IKEv2 with PSK and a transport-mode GRE CHILD_SA and its IKE
SA is ESTABLISHED with the hub's AUTH verified. This container's kernel has no XFRM, so charon
cannot install the CHILD_SA and DELETEs it: the hub's side is what is checked: it installs the
pair on IKE_AUTH with charon's SPIs mirrored (its log), counts the IKE datagrams in and out,
removes the pair on the DELETE; `show crypto ikev2 sa [detail]` / `session --json` name the
peer; `clear crypto sa peer` makes the hub DELETE the IKE SA (charon drops it, the hub logs the
peer down); a second IKE SA installs a second pair and charon's IKE DELETE removes it; a
third with charon faking a NAT (encap) runs on UDP 4500 and the hub installs its pair with
ESP-in-UDP 4500 -> 4500; charon rekeys that IKE SA; a reload
changing the ike section reaches the engine and keeps the SAs; a reload to certificate
authentication (RSA-2048 from strongSwan's pki) with `fragment-size: 576`, and charon's
fragment_size 576: both IKE_AUTH messages cross as RFC 7383 fragments, each end reassembles the
other's (charon's log) and the SA comes up with the certificates verified; the hub stops
cleanly. Needs root, build/dmvpn-hub and Debian's strongSwan; exit 77 otherwise.
"""

import json
import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hubnet  # noqa: E402
import strongswan as ss  # noqa: E402

TAG = f"shi{os.getpid() % 100000}"
HUB_NBMA, SS_ADDR = "198.51.100.1", "198.51.100.50"
PSK = "interop-psk-0123456789"
FRAGMENT_SIZE = 576   # RFC 7383's example for IPv4; both ends fragment IKE_AUTH at it

check = ss.Checks()
failures = check.failures


def hub_config():
    text = hubnet.EXAMPLE.read_text()
    text = text.replace("    verify-source: true",
                        "    ipsec-profile: ikev2\n    verify-source: true")
    assert "ipsec-profile: ikev2" in text
    return text.replace("management:", f"""ipsec-profiles:
  - name: ikev2
    ike:
      version: 2
      authentication: psk
      psk: {PSK}
      dpd-interval: 0

management:""")


def cert_config(certs):
    """The hub's profile keyed by certificates, fragmenting at 576 octets (RFC 7383)."""
    hub_cert, hub_key = certs[HUB_NBMA]
    return hub_config().replace(f"""      authentication: psk
      psk: {PSK}
""", f"""      authentication: certificate
      certificate: {hub_cert}
      private-key: {hub_key}
      ca: [{certs["ca"]}]
      fragmentation: yes
      fragment-size: {FRAGMENT_SIZE}
""")


def s(v):
    return v.decode(errors="replace") if isinstance(v, bytes) else str(v)


def hub_sas(hub):
    return [x for x in hub.ctl_json("show", "stats")["sas"] if x["profile"] == "ikev2"]


def wait(pred, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    return pred()


def established(charon):
    return charon.wait_sa(lambda sa: s(sa.get("state")) == "ESTABLISHED", timeout=20,
                          what="established IKE SA")


def charon_spis(log, n):
    """The n-th (from 1) CHILD_SA's SPIs charon tried to put in its kernel: (inbound, outbound)."""
    spis = re.findall(r"adding (inbound|outbound) ESP SA\n.*?SPI 0x([0-9a-f]{8})", log)
    by = [(d, int(v, 16)) for d, v in spis]
    ins = [v for d, v in by if d == "inbound"]
    outs = [v for d, v in by if d == "outbound"]
    return (ins[n - 1], outs[n - 1]) if len(ins) >= n and len(outs) >= n else None


def check_pair(hub, charon, n):
    spis = wait(lambda: charon_spis(charon.log(), n))
    line = (f"IPsec SA up: profile ikev2 peer {SS_ADDR} spi in 0x{spis[1]:08x} out "
            f"0x{spis[0]:08x}, IKEv2 child" if spis else "?")
    check(spis is not None and wait(lambda: line in hub.log(), 5),
          f"CHILD_SA {n}: the hub installed the pair with charon's SPIs mirrored ({line})",
          hub.log())


def main():
    why = ss.available()
    if why or not hubnet.HUB_BIN.exists():
        print(f"strongswan_hub_ike: SKIP: {why or 'needs build/dmvpn-hub'}")
        return 77
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.alarm(170)
    work = Path(tempfile.mkdtemp(prefix="ss-hub-ike-"))
    ns_hub = ns_ss = hub = charon = None
    t0 = time.time()
    try:
        cfg = work / "hub.yaml"
        cfg.write_text(hub_config())
        ns_hub, ns_ss = ss.Netns(f"{TAG}-hub"), ss.Netns(f"{TAG}-ss")
        hub = hubnet.Hub(ns_hub.name, None, work / "hub", config=cfg, log_level="info")
        hub.start()
        ss.hand_tap(hub, ns_hub, ns_ss, SS_ADDR)
        rc, text = hub.ctl("show", "crypto", "ikev2", "sa")
        check(rc == 0, "the hub runs an IKE thread (it renders show crypto when asked)", text)

        # This container's kernel has no XFRM: charon negotiates the CHILD_SA, fails to put it
        # in its kernel and DELETEs it, keeping the IKE SA. The hub's side (install on
        # IKE_AUTH, remove on the DELETE) is what is checked.
        # fragment_size: only the certificate case's IKE_AUTH is that big (PSK messages are
        # smaller than 576 octets).
        charon = ss.Charon(ns_ss, work / "c", name="spoke",
                           settings=f"  fragment_size = {FRAGMENT_SIZE}\n")
        charon.start()
        charon.load(ss.Conn(SS_ADDR, HUB_NBMA, psk=PSK, proposals="aes256gcm16-prfsha256-x25519",
                            esp_proposals="aes256gcm16"))
        r = charon.initiate("dmvpn", "dmvpn", timeout=15, check=False)
        established(charon)
        check(f"authentication of '{HUB_NBMA}' with pre-shared key successful" in charon.log(),
              "charon: IKE SA ESTABLISHED with the hub (PSK, the hub's AUTH verified)")
        check_pair(hub, charon, 1)
        ctl = wait(lambda: (c := hub.ctl_json("show", "stats")["control"])["ike_child_removes"]
                   == 1 and c)
        check(ctl and ctl["ike_rx"] >= 3 and ctl["ike_tx"] >= 3 and ctl["ike_child_installs"] == 1
              and ctl["ike_child_removes"] == 1,
              "the hub took IKE_SA_INIT, IKE_AUTH and charon's DELETE of the CHILD_SA, answered "
              "each, installed the CHILD_SA and removed it", str(ctl) + r.stdout + r.stderr)
        check(not hub_sas(hub), "no pair is left in show stats", json.dumps(hub_sas(hub)))

        shown = wait(lambda: SS_ADDR in hub.ctl("show", "crypto", "ikev2", "sa")[1], 3)
        check(shown, "show crypto ikev2 sa names the peer (rendered by the IKE thread)",
              hub.ctl("show", "crypto", "ikev2", "sa")[1])
        rc, text = hub.ctl("show", "crypto", "session", "--json")
        try:
            json.loads(text)
            parsed = True
        except ValueError:
            parsed = False
        check(rc == 0 and parsed and SS_ADDR in text,
              "show crypto session --json is JSON naming the peer", text)
        rc, text = hub.ctl("show", "crypto", "ikev2", "sa", "detail")
        check(rc == 0 and SS_ADDR in text, "show crypto ikev2 sa detail names the peer", text)
        rc, text = hub.ctl("show", "crypto", "ipsec", "sa")
        check(rc == 0, "show crypto ipsec sa answers", text)

        # clear crypto sa peer: the hub DELETEs the IKE SA; charon hears it and drops it.
        rc, text = hub.ctl("clear", "crypto", "sa", "peer", SS_ADDR)
        check(rc == 0, "clear crypto sa peer ADDR is accepted", text)
        gone = wait(lambda: not any(s(x.get("state")) == "ESTABLISHED"
                                    for x in charon.sas().values()), 10)
        check(gone, "charon's IKE SA is gone after the hub's DELETE", str(charon.sas()))
        check(wait(lambda: "IKEv2 SA down: peer 198.51.100.50" in hub.log(), 5),
              "the hub logged the IKE SA down (NHRP forgets the peer)", hub.log())

        # A second IKE SA: a new CHILD_SA installed, then charon deletes everything.
        charon.initiate("dmvpn", "dmvpn", timeout=15, check=False)
        sa = established(charon)
        check_pair(hub, charon, 2)
        charon.terminate_ike(sa["uniqueid"])
        ctl = wait(lambda: (c := hub.ctl_json("show", "stats")["control"])["ike_child_removes"]
                   == 2 and c)
        check(ctl and ctl["ike_child_installs"] == 2 and ctl["ike_child_install_failed"] == 0
              and ctl["ike_rx_bad"] == 0,
              "two CHILD_SAs installed and removed, none refused", str(ctl))
        check(wait(lambda: hub.log().count("IKEv2 SA up: peer 198.51.100.50") == 2, 5),
              "the hub logged both IKE SAs up")

        # NAT-T: charon pretends to be behind a NAT (encap = yes): IKE moves to 4500 with the
        # non-ESP marker and the hub installs the pair with ESP-in-UDP 4500 -> 4500.
        charon.load(ss.Conn(SS_ADDR, HUB_NBMA, psk=PSK, proposals="aes256gcm16-prfsha256-x25519",
                            esp_proposals="aes256gcm16", encap=True))
        charon.initiate("dmvpn", "dmvpn", timeout=15, check=False)
        sa = established(charon)
        check(s(sa.get("local-port")) == "4500" and s(sa.get("remote-port")) == "4500",
              "NAT-T: charon's IKE SA with the hub runs on UDP 4500", str(sa))
        check(wait(lambda: "IKEv2 child 3, UDP 4500:4500" in hub.log(), 5),
              "NAT-T: the hub installed the third pair with UDP encapsulation 4500 -> 4500",
              hub.log())
        # An IKE SA rekey initiated by charon (CREATE_CHILD_SA over 4500).
        charon.rekey_ike(sa["uniqueid"])
        rekeyed = wait(lambda: any(s(x.get("state")) == "ESTABLISHED" and x["uniqueid"] !=
                                   sa["uniqueid"] for x in charon.sas().values()), 10)
        check(rekeyed, "charon rekeyed its IKE SA with the hub", str(charon.sas()))
        # Reload with a changed ike section: the engine takes it; the negotiated pair stays.
        downs = hub.log().count("IPsec SA down")
        cfg.write_text(hub_config().replace("dpd-interval: 0", "dpd-interval: 60"))
        rc, text = hub.ctl("reload")
        check(rc == 0 and "applied" in text, "reload with a changed ike section is applied", text)
        check(wait(lambda: "IKEv2: reload applied" in hub.log(), 5),
              "the IKE thread took the new profiles", hub.log())
        check(hub.log().count("IPsec SA down") == downs and wait(lambda: SS_ADDR in hub.ctl(
            "show", "crypto", "ikev2", "sa")[1], 3),
              "the negotiated pair and the IKE SA stay across the reload", hub.log())

        # RFC 7383: certificates across 576-octet datagrams in both directions.
        certs = ss.make_ca(work / "pki", "rsa", names=(HUB_NBMA, SS_ADDR))
        cfg.write_text(cert_config(certs))
        rc, text = hub.ctl("reload")
        check(rc == 0 and "applied" in text, "reload to certificate authentication is applied",
              text)
        check(wait(lambda: hub.log().count("IKEv2: reload applied") == 2, 5),
              "the IKE thread took the certificate profile", hub.log())
        before = set(charon.sas())
        charon.load(ss.Conn(SS_ADDR, HUB_NBMA, auth="pubkey", local_id=SS_ADDR,
                            remote_id=HUB_NBMA, cert=certs[SS_ADDR][0], key=certs[SS_ADDR][1],
                            cacert=certs["ca"], proposals="aes256-sha256-modp2048",
                            esp_proposals="aes256-sha256"))
        charon.initiate("dmvpn", "dmvpn", timeout=20, check=False)
        fresh = wait(lambda: [x for k, x in charon.sas().items() if k not in before and
                              s(x.get("state")) == "ESTABLISHED"], 20)
        log = charon.log()
        check(bool(fresh), "certificates: charon's IKE SA with the hub is ESTABLISHED",
              str(charon.sas()))
        check(f"authentication of '{HUB_NBMA}' with RSA" in log,
              "certificates: charon verified the hub's RSA signature and certificate chain", log)
        split = re.findall(r"splitting IKE message \((\d+) bytes\) into (\d+) fragments", log)
        check(any(int(n) >= 3 for _, n in split),
              f"charon sent its IKE_AUTH as fragments at {FRAGMENT_SIZE} ({split})", log)
        joined = re.findall(r"received fragment #(\d+) of (\d+), reassembled fragmented IKE "
                            r"message \((\d+) bytes\)", log)
        check(any(int(t) >= 3 for _, t, _ in joined),
              f"charon reassembled the hub's fragmented IKE_AUTH response ({joined})", log)
        check(wait(lambda: hub.log().count("IKEv2 SA up: peer 198.51.100.50") >= 4, 5),
              "the hub authenticated charon's certificate (IKE SA up)", hub.log())
        rc, text = hub.ctl("show", "crypto", "ikev2", "sa", "--json")
        check(rc == 0 and '"fragmentation":true' in text.replace(" ", ""),
              "show crypto ikev2 sa --json: fragmentation negotiated", text)
        ctl = hub.ctl_json("show", "stats")["control"]
        check(ctl["ike_rx_bad"] == 0, "no IKE datagram refused by the hub", str(ctl))
        check(hub.alive(), "the hub keeps running")
        print(hub.ctl("show", "stats")[1], flush=True)
    except AssertionError as e:
        check(False, str(e))
    finally:
        ss.tear_down(check, hub, charon, (ns_ss, ns_hub), work, charon_log_tail=8000)
    print(f"strongswan_hub_ike: {len(failures)} failure(s) in {time.time() - t0:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
