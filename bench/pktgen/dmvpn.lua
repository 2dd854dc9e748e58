-- bench/pktgen/dmvpn.lua: drive a dmvpn-hub from pktgen-dpdk with the captures of
-- bench/pktgen/make-captures, at a chosen rate for a chosen time, and report per-port rx/tx
-- packets per second. Written against pktgen-dpdk's documented Lua API (pktgen.set, start, stop,
-- portStats, set_ipaddr, process, pcap, delay). Run under pktgen-dpdk 23.03 on virtual ports
-- (veth pairs) by `bench/run pktgen` (bench/pktgen/run.py); not yet on real NICs: see
-- bench/pktgen/README.md.
--
-- The captures are loaded by pktgen itself, on its command line (-s PORT:FILE):
--   pktgen -l 0-4 -n 4 -a WAN_PCI -a LAN_PCI -- -P -m "[1:2].0,[3:4].1" \
--       -s 0:bench/pktgen/captures/to-hub-64.pcap -s 1:bench/pktgen/captures/from-lan-64.pcap \
--       -f bench/pktgen/dmvpn.lua
-- Give each sending port ONE tx lcore: pktgen loads the whole capture for every tx queue, so two
-- tx queues send every ESP frame twice, and the hub's anti-replay check drops the second copy.
--
-- Settings come from the environment (pktgen's Lua has the standard os library):
--   DMVPN_TX       ports that send, a pktgen port list ("0", "1", "0-1")          default "0"
--   DMVPN_RX       ports reported                                                  default "0-1"
--   DMVPN_RATE     transmit rate, percent of line rate (pktgen's "set P rate")     default 100
--   DMVPN_SECONDS  how long to send and sample                                     default 10
--   DMVPN_COUNT    frames each sending port sends, then stops (pktgen's "set P count");
--                  0 sends until DMVPN_SECONDS ends. For an ESP capture set it to the capture's
--                  frame count (manifest.json "frames"): one pass, no replayed sequence numbers.
--                                                                                  default 0
--   DMVPN_BURST    tx burst size                                                   default 32
--   DMVPN_GEN_IPS  the generator ports' addresses, answered in ARP for the hub
--                  ("port=addr/len,..."), as make-captures plans them
--                                                   default "0=198.18.0.2/24,1=198.19.0.2/24"
--   DMVPN_RESULT   file to append one JSON line of results to                      default none
--   DMVPN_QUIT     "1": quit pktgen when done (for unattended runs)                 default "0"
--   DMVPN_PRIME    frames each reported port sends, twice in turn, before the measurement
--                  (0: none). pktgen 23.03 queues its ARP replies in a port's tx buffer and
--                  flushes that buffer only when the port itself transmits, so a port that only
--                  receives (port 1 while port 0 replays to-hub) never answers the hub's ARP and
--                  the hub's traffic towards it is dropped (`no_adjacency`). Priming makes every
--                  port transmit once after the hub has asked. The primed ESP frames repeat the
--                  capture's first sequence numbers: with `anti-replay: true` on the hub, set 0
--                  and make every port send in the measurement instead.            default 16

local function env(name, default)
    local v = os.getenv(name)
    if v == nil or v == "" then
        return default
    end
    return v
end

local cfg = {
    tx = env("DMVPN_TX", "0"),
    rx = env("DMVPN_RX", "0-1"),
    rate = tonumber(env("DMVPN_RATE", "100")),
    seconds = tonumber(env("DMVPN_SECONDS", "10")),
    count = tonumber(env("DMVPN_COUNT", "0")),
    burst = tonumber(env("DMVPN_BURST", "32")),
    gen_ips = env("DMVPN_GEN_IPS", "0=198.18.0.2/24,1=198.19.0.2/24"),
    result = env("DMVPN_RESULT", nil),
    quit = env("DMVPN_QUIT", "0") == "1",
    prime = tonumber(env("DMVPN_PRIME", "16")),
}

if cfg.rate == nil or cfg.rate <= 0 or cfg.rate > 100 then
    error("DMVPN_RATE must be a percentage in (0, 100]")
end
if cfg.seconds == nil or cfg.seconds < 1 then
    error("DMVPN_SECONDS must be at least 1")
end
if cfg.count == nil or cfg.count < 0 then
    error("DMVPN_COUNT must be 0 or a frame count")
end

-- "0-1,3" -> {0, 1, 3}
local function ports_of(list)
    local out = {}
    for part in string.gmatch(list, "[^,]+") do
        local a, b = string.match(part, "^%s*(%d+)%s*%-%s*(%d+)%s*$")
        if a then
            for p = tonumber(a), tonumber(b) do
                out[#out + 1] = p
            end
        else
            local p = string.match(part, "^%s*(%d+)%s*$")
            if not p then
                error("not a port list: " .. list)
            end
            out[#out + 1] = tonumber(p)
        end
    end
    return out
end

-- Port counters as plain numbers. pktgen's portStats changed shape across releases: older ones
-- take (portlist, "port") and return {[pid] = {ipackets, opackets, ...}}; newer ones take
-- (portlist) and nest the counters under [pid].curr (docs/LUA_API.md).
local function counters(list)
    local ok, t = pcall(pktgen.portStats, list, "port")
    if not ok or type(t) ~= "table" then
        ok, t = pcall(pktgen.portStats, list)
    end
    if not ok or type(t) ~= "table" then
        error("pktgen.portStats failed: " .. tostring(t))
    end
    local out = {}
    for _, pid in ipairs(ports_of(list)) do
        local e = t[pid] or {}
        local c = e.curr or e
        out[pid] = {
            ipackets = c.ipackets or 0,
            opackets = c.opackets or 0,
            ibytes = c.ibytes or 0,
            obytes = c.obytes or 0,
            imissed = c.imissed or 0,
            ierrors = c.ierrors or 0,
            oerrors = c.oerrors or 0,
        }
    end
    return out
end

local function sending(list)
    local ok, t = pcall(pktgen.isSending, list)
    if not ok or type(t) ~= "table" then
        return true  -- unknown: let the clock decide
    end
    for _, pid in ipairs(ports_of(list)) do
        if t[pid] == "y" then
            return true
        end
    end
    return false
end

-- Every port named, once, as a pktgen port list.
local all_ports = {}
do
    local seen = {}
    for _, list in ipairs({cfg.tx, cfg.rx}) do
        for _, pid in ipairs(ports_of(list)) do
            if not seen[pid] then
                seen[pid] = true
                all_ports[#all_ports + 1] = pid
            end
        end
    end
    table.sort(all_ports)
end
local all = table.concat(all_ports, ",")

-- The hub ARPs for its gateways (the generator ports): answer for the planned addresses.
for pair in string.gmatch(cfg.gen_ips, "[^,]+") do
    local pid, addr = string.match(pair, "^%s*(%d+)%s*=%s*([%d%./]+)%s*$")
    if not pid then
        error("DMVPN_GEN_IPS: not port=addr/len: " .. pair)
    end
    pktgen.set_ipaddr(pid, "src", addr)
    pktgen.process(pid, "on")
end

-- Priming (see DMVPN_PRIME): each port sends a few frames, in turn, twice, each round after a
-- gratuitous ARP for its address, so that the hub, which asked for the generator's addresses
-- in the first round, learns them in the second (the frames flush the queued ARP).
if cfg.prime and cfg.prime > 0 then
    pktgen.pcap(all, "on")
    pktgen.set(all, "rate", 1)
    for _ = 1, 2 do
        pktgen.send_arp(all, "g")           -- gratuitous: the hub learns an address it asked for
        for _, pid in ipairs(all_ports) do
            pktgen.set(tostring(pid), "count", cfg.prime)
            pktgen.start(tostring(pid))
            pktgen.delay(500)
            pktgen.stop(tostring(pid))
        end
    end
    pktgen.pcap(all, "off")
end

pktgen.pcap(cfg.tx, "on")                 -- send the capture loaded with -s, not the single packet
pktgen.set(cfg.tx, "rate", cfg.rate)
pktgen.set(cfg.tx, "burst", cfg.burst)
pktgen.set(cfg.tx, "count", cfg.count)    -- 0: forever
pktgen.clr()
pktgen.delay(1000)                         -- let the ARP exchange with the hub settle

print(string.format("dmvpn.lua: tx %s at %g%% for %d s, count %d; reporting %s",
    cfg.tx, cfg.rate, cfg.seconds, cfg.count, cfg.rx))

local rx_ports = ports_of(cfg.rx)
local tx_ports = ports_of(cfg.tx)
local first = counters(all)
local prev = first
pktgen.start(cfg.tx)
local seconds = 0
while seconds < cfg.seconds do
    pktgen.delay(1000)
    seconds = seconds + 1
    local now = counters(all)
    local line = string.format("t=%3ds", seconds)
    for _, pid in ipairs(tx_ports) do
        line = line .. string.format("  tx%d %.3f Mpps", pid, (now[pid].opackets - prev[pid].opackets) / 1e6)
    end
    for _, pid in ipairs(rx_ports) do
        line = line .. string.format("  rx%d %.3f Mpps", pid, (now[pid].ipackets - prev[pid].ipackets) / 1e6)
    end
    print(line)
    prev = now
    if cfg.count > 0 and not sending(cfg.tx) then
        break  -- every port sent its count
    end
end
pktgen.stop(cfg.tx)
pktgen.delay(1000)                         -- what the hub still had in flight
local last = counters(all)

-- Rates over the sending time (whole seconds sampled, so +-1 s on a short run); totals exact.
local json = {}
for _, pid in ipairs(all_ports) do
    do
        local d = {}
        for k, v in pairs(last[pid]) do
            d[k] = v - first[pid][k]
        end
        print(string.format(
            "port %d: tx %d pkts (%.3f Mpps, %.2f Gbit/s)  rx %d pkts (%.3f Mpps, %.2f Gbit/s)  " ..
            "imissed %d ierrors %d oerrors %d",
            pid, d.opackets, d.opackets / seconds / 1e6, d.obytes * 8 / seconds / 1e9,
            d.ipackets, d.ipackets / seconds / 1e6, d.ibytes * 8 / seconds / 1e9,
            d.imissed, d.ierrors, d.oerrors))
        json[#json + 1] = string.format(
            "\"%d\":{\"tx_packets\":%d,\"rx_packets\":%d,\"tx_bytes\":%d,\"rx_bytes\":%d," ..
            "\"tx_pps\":%.0f,\"rx_pps\":%.0f,\"imissed\":%d,\"ierrors\":%d,\"oerrors\":%d}",
            pid, d.opackets, d.ipackets, d.obytes, d.ibytes, d.opackets / seconds,
            d.ipackets / seconds, d.imissed, d.ierrors, d.oerrors)
    end
end

if cfg.result then
    local f = io.open(cfg.result, "a")
    if f then
        f:write(string.format("{\"tx\":\"%s\",\"rate_pct\":%g,\"seconds\":%d,\"count\":%d,\"ports\":{%s}}\n",
            cfg.tx, cfg.rate, seconds, cfg.count, table.concat(json, ",")))
        f:close()
    else
        print("dmvpn.lua: cannot write " .. cfg.result)
    end
end

if cfg.quit then
    pcall(pktgen.quit)
end
