// The key log: a debugging aid that writes the IKE SA keys (SK_e*, SK_a*) and the ESP keys
// (KEYMAT) of every SA the engine makes in Wireshark's own table formats, so that Wireshark or
// tshark decrypts a capture of the hub's IKE and ESP traffic, and dmvpn-decode --ikev2-keys reads
// the IKE table back. Off unless asked for (dmvpn-hub / dmvpn-spokesim --key-log DIR); whoever
// reads the files can decrypt every message and packet of those SAs.
//
//   DIR/ikev2_decryption_table  Wireshark's IKEv2 decryption table (UAT "ikev2_decryption_table"):
//     one row per IKE SA: initiator SPI, responder SPI (16 hex digits), SK_ei, SK_er (hex; for
//     AES-GCM the key followed by its 4-byte salt), "encryption algorithm", SK_ai, SK_ar (hex,
//     empty for AES-GCM), "integrity algorithm".
//   DIR/esp_sa  Wireshark's ESP SA table (UAT "esp_sa"): one row per direction of a CHILD_SA:
//     "IPv4", "source", "destination", "0xSPI", "encryption algorithm", "0xkey" (GCM: key and
//     salt), "authentication algorithm", "0xkey" (empty for GCM).
//   DIR/preferences  (written only when absent) esp.enable_encryption_decode: TRUE, so that DIR
//     is a complete Wireshark configuration directory: WIRESHARK_CONFIG_DIR=DIR tshark -r ...
//
// Rows are appended as SAs are made (rekeys included) and flushed row by row. The files are
// created mode 0600 (DIR 0700). The algorithm names are the strings Wireshark 4.0's tables use
// (epan/dissectors/packet-isakmp.c and packet-esp.c): a row with any other string is ignored by
// Wireshark, so an SA whose algorithms have no name here is not written (counted as skipped).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "control/ike/crypto.hpp"
#include "control/ike/events.hpp"
#include "dataplane/wire/result.hpp"

namespace dmvpn::ike::keylog {

// Wireshark's names for IKEv2 transforms (ikev2_decryption_table) and ESP algorithms (esp_sa);
// nullopt where Wireshark 4.0 has none (or we negotiate no such transform).
std::optional<std::string_view> ikev2_encr_name(uint16_t encr, uint16_t bits) noexcept;
std::optional<std::string_view> ikev2_integ_name(uint16_t integ) noexcept;
std::optional<std::string_view> esp_encr_name(uint16_t encr, uint16_t bits) noexcept;
std::optional<std::string_view> esp_auth_name(uint16_t integ) noexcept;

// One ikev2_decryption_table row (no newline), or nullopt when an algorithm has no name.
std::optional<std::string> ikev2_row(uint64_t spi_i, uint64_t spi_r, const crypto::ike_keys& k);
// The two esp_sa rows of a CHILD_SA (inbound: peer -> local, then outbound), newline-terminated.
std::optional<std::string> esp_rows(const child_sa& c);

// A parsed ikev2_decryption_table row: the keys as crypto::unprotect() takes them.
struct ikev2_entry {
    uint64_t spi_i = 0, spi_r = 0;
    crypto::sk_keys initiator;  // SK_ei, SK_ai
    crypto::sk_keys responder;  // SK_er, SK_ar
};
// The rows of an ikev2_decryption_table file (comment lines, starting with '#', and blank lines
// skipped). The error names the line and what is wrong: field count, a SPI or key that is not
// hex of the right length for its algorithm, an algorithm name Wireshark does not have or we
// cannot decrypt with.
wire::result<std::vector<ikev2_entry>, std::string> parse_ikev2_table(std::string_view text);

// The writer. Not thread-safe: one thread writes (the IKE thread, or the emulator's loop); the
// counters may be read from anywhere.
class writer {
public:
    // Creates DIR (0700) when missing and opens (appends to) its two tables. The error names the
    // path and the system's reason.
    static wire::result<std::unique_ptr<writer>, std::string> open(const std::string& dir);
    ~writer();
    writer(const writer&) = delete;
    writer& operator=(const writer&) = delete;

    void ike_sa(uint64_t spi_i, uint64_t spi_r, const crypto::ike_keys& k);
    void child(const child_sa& c);

    const std::string& dir() const noexcept { return _dir; }
    uint64_t ike_rows_written() const noexcept { return _ike_rows.load(std::memory_order_relaxed); }
    uint64_t esp_rows_written() const noexcept { return _esp_rows.load(std::memory_order_relaxed); }
    // Rows not written: a write failed, or an algorithm Wireshark has no name for.
    uint64_t skipped() const noexcept { return _skipped.load(std::memory_order_relaxed); }

private:
    writer(std::string dir, int ike_fd, int esp_fd);
    bool append(int fd, std::string& text);  // wipes `text` afterwards

    std::string _dir;
    int _ike_fd = -1, _esp_fd = -1;
    std::atomic<uint64_t> _ike_rows{0}, _esp_rows{0}, _skipped{0};
};

// The warning dmvpn-hub and dmvpn-spokesim print at start and `show crypto` repeats.
std::string warning(const std::string& dir);

}  // namespace dmvpn::ike::keylog
