// Capture files: reading pcap and pcapng, stripping link layers, writing classic pcap.
//
// The reader takes pcap in both byte orders with micro- or nanosecond stamps, and pcapng (SHB,
// IDB, EPB, SPB and the obsolete PB; other blocks are skipped) with a link type per interface.
// The link layers are those the tools decode: Ethernet with 802.1Q/QinQ, Linux cooked v1/v2 and
// raw IP. The writer serves golden tests and the spoke emulator.
#pragma once

#include <array>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/wire/reader.hpp"
#include "dataplane/wire/result.hpp"

namespace dmvpn::wire::pcap {

// LINKTYPE_* values (tcpdump.org/linktypes.html) that this project reads or writes.
namespace linktype {
inline constexpr uint16_t ethernet = 1;
inline constexpr uint16_t raw = 101;  // raw IPv4 or IPv6, told apart by the version nibble
inline constexpr uint16_t linux_sll = 113;
inline constexpr uint16_t ipv4 = 228;
inline constexpr uint16_t ipv6 = 229;
inline constexpr uint16_t linux_sll2 = 276;
}  // namespace linktype

enum class file_format : uint8_t { pcap, pcapng };

enum class error : uint8_t {
    // Both formats.
    file_too_short,       // not even a file header / section header block
    bad_magic,            // neither pcap nor pcapng
    unsupported_version,  // pcap major version other than 2, pcapng major other than 1
    truncated_record_header,
    truncated_record_data,  // the record says more bytes follow than the file holds
    caplen_exceeds_snaplen,
    caplen_too_large,  // more than any capture tool writes (256 KiB)
    // pcapng only.
    block_too_short,         // total length below the block type's fixed part
    block_length_unaligned,  // total length not a multiple of 4
    block_lengths_differ,    // the trailing copy of the total length disagrees
    bad_byte_order_magic,
    caplen_exceeds_block,  // an EPB's captured length runs past its block
    unknown_interface,     // a packet names an interface no IDB described
    malformed_option,      // an option that runs past its block
    unsupported_timestamp_resolution,
};
std::string_view name(error e) noexcept;

// Seconds and nanoseconds since the Unix epoch. Seconds are signed: pcapng's if_tsoffset is.
struct timestamp {
    int64_t sec = 0;
    uint32_t nsec = 0;

    bool operator==(const timestamp&) const = default;
};

// One captured packet. `data` points into the buffer the reader was opened on.
struct record {
    uint64_t number = 0;  // 1-based, in file order (Wireshark's frame.number)
    uint32_t interface_id = 0;
    uint16_t link_type = 0;
    timestamp ts;
    uint32_t original_length = 0;  // on the wire; data.size() is what was captured
    std::span<const uint8_t> data;
};

struct interface_description {
    uint16_t link_type = 0;
    uint32_t snaplen = 0;  // 0: no limit
    // Timestamp units: 10^-n seconds when !binary, 2^-n when binary (pcapng if_tsresol).
    uint8_t resolution_exponent = 6;
    bool resolution_binary = false;
    int64_t offset_sec = 0;  // if_tsoffset
};

// Reads records one at a time from a whole file in memory. Nothing is copied: records point
// into `file`, which must outlive the reader. After an error every later next() returns it
// again, so a loop stops at the first lie the file tells.
class file_reader {
public:
    static result<file_reader, error> open(std::span<const uint8_t> file);

    // The next record; nullopt at a clean end of file.
    result<std::optional<record>, error> next();

    file_format format() const noexcept { return _format; }
    // Interfaces seen so far (classic pcap: exactly one, from the file header). pcapng
    // describes interfaces as it goes, and a new section starts the list over.
    const std::vector<interface_description>& interfaces() const noexcept { return _ifaces; }
    // Offset of the next unread byte: where the error is, after one.
    size_t offset() const noexcept { return _in.offset(); }

private:
    file_reader() = default;
    result<std::optional<record>, error> next_pcap();
    result<std::optional<record>, error> next_pcapng();
    std::optional<error> read_section_header();
    std::optional<error> read_interface_description(wire::reader body);
    result<record, error> read_enhanced_packet(wire::reader body);
    result<record, error> read_simple_packet(wire::reader body);
    result<record, error> read_obsolete_packet(wire::reader body);
    result<record, error> finish(uint32_t ifc, uint64_t units, uint32_t caplen, uint32_t orig,
                                 wire::reader body);
    std::optional<uint16_t> u16(wire::reader& r) const noexcept;
    std::optional<uint32_t> u32(wire::reader& r) const noexcept;
    std::optional<uint64_t> u64(wire::reader& r) const noexcept;

    wire::reader _in;
    file_format _format = file_format::pcap;
    bool _big_endian = false;  // of the file, or of the current pcapng section
    std::vector<interface_description> _ifaces;
    uint64_t _number = 0;
    std::optional<error> _failed;
};

// What a link-layer header said and where the network-layer packet starts.
struct link_frame {
    uint16_t link_type = 0;
    // The outermost type field: Ethernet's EtherType (0x8100 for a tagged frame) or the
    // Linux cooked header's protocol. 0 for raw IP.
    uint16_t outer_type = 0;
    uint16_t ethertype = 0;  // of `payload`, after any VLAN tags; raw IP: 0x0800 or 0x86dd
    // An 802.3 frame (after any VLAN tags): its length field, and no EtherType.
    std::optional<uint16_t> ieee8023_length;
    std::array<uint16_t, 2> vlan_tci{};   // outermost first
    std::array<uint16_t, 2> vlan_type{};  // the type/length field that follows each tag
    uint8_t vlan_count = 0;
    std::optional<uint16_t> sll_pkttype;  // Linux cooked: packet type
    std::optional<uint16_t> sll_hatype;   // Linux cooked: ARPHRD_ type
    std::span<const uint8_t> payload;
};

enum class link_error : uint8_t {
    unsupported_link_type,
    truncated_ethernet_header,
    truncated_vlan_tag,
    too_many_vlan_tags,  // more than two (QinQ)
    truncated_sll_header,
    empty_raw_packet,
    unknown_ip_version,  // raw link type whose first nibble is neither 4 nor 6
};
std::string_view name(link_error e) noexcept;

// Strips the link-layer header of `link_type` (a LINKTYPE_ value).
result<link_frame, link_error> strip_link_layer(uint16_t link_type, std::span<const uint8_t> data);

// Classic pcap output.
enum class precision : uint8_t { micro, nano };

// The 24-byte file header, little-endian as libpcap writes on x86.
std::vector<uint8_t> encode_file_header(uint16_t link_type, uint32_t snaplen, precision p);
// One record header and its data; `original_length` below data.size() is raised to it.
std::vector<uint8_t> encode_record(timestamp ts, std::span<const uint8_t> data,
                                   uint32_t original_length, precision p);

enum class write_error : uint8_t { cannot_open, write_failed, close_failed };
std::string_view name(write_error e) noexcept;

// The reason and errno of a failed file operation (errno says why, for the message).
struct io_failure {
    write_error reason;
    int sys_errno = 0;
};

// Writes a classic pcap file through stdio. Records larger than the snaplen are truncated to
// it, as a capture would; their original length is kept.
class file_writer {
public:
    static result<file_writer, io_failure> create(const std::string& path, uint16_t link_type,
                                                  uint32_t snaplen = 262144,
                                                  precision p = precision::micro);
    file_writer(file_writer&& o) noexcept;
    file_writer& operator=(file_writer&& o) noexcept;
    file_writer(const file_writer&) = delete;
    file_writer& operator=(const file_writer&) = delete;
    ~file_writer();

    std::optional<io_failure> write(timestamp ts, std::span<const uint8_t> frame);
    // Flushes and closes; the destructor closes too but cannot report a failure.
    std::optional<io_failure> close();
    uint64_t records() const noexcept { return _records; }

private:
    file_writer(std::FILE* f, uint32_t snaplen, precision p) : _f(f), _snaplen(snaplen), _p(p) {}
    std::FILE* _f = nullptr;
    uint32_t _snaplen = 0;
    precision _p = precision::micro;
    uint64_t _records = 0;
};

// Reads a whole file into memory (captures are small next to memory; the reader wants one span).
enum class load_error : uint8_t { cannot_open, read_failed };
std::string_view name(load_error e) noexcept;
struct load_failure {
    load_error reason;
    int sys_errno = 0;
};
result<std::vector<uint8_t>, load_failure> load_file(const std::string& path);

}  // namespace dmvpn::wire::pcap
