#!/usr/bin/env python3
"""Known answers for tests/unit/ike_crypto_test.cpp, computed independently of the C++ code
with python3's hmac/hashlib and python3-cryptography (AES-CBC, AES-GCM).

Run: python3 tests/unit/ike_vectors.py > tests/unit/ike_crypto_vectors.hpp
"""
import hashlib
import hmac

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

HASH = {'sha1': hashlib.sha1, 'sha256': hashlib.sha256, 'sha384': hashlib.sha384,
        'sha512': hashlib.sha512}


def prf(h, key, data):
    return hmac.new(key, data, HASH[h]).digest()


def prf_plus(h, key, seed, n):  # RFC 7296 section 2.13
    out, t, i = b'', b'', 1
    while len(out) < n:
        t = prf(h, key, t + seed + bytes([i]))
        out += t
        i += 1
    return out[:n]


def pattern(n, start):
    return bytes((start + 7 * i) % 256 for i in range(n))


out = []


def emit(name, value):
    h = value.hex()
    one_line = f'inline constexpr const char* {name} = "{h}";'
    if len(one_line) <= 100:
        out.append(one_line)
        return
    chunks = [h[i:i + 64] for i in range(0, len(h), 64)] or ['']
    body = '\n    '.join(f'"{c}"' for c in chunks)
    out.append(f'inline constexpr const char* {name} =\n    {body};')


# ---- prf+ ----
key = pattern(32, 1)
seed = pattern(40, 2)
emit('prf_plus_sha256_key', key)
emit('prf_plus_sha256_seed', seed)
emit('prf_plus_sha256_100', prf_plus('sha256', key, seed, 100))
emit('prf_plus_sha512_150', prf_plus('sha512', key, seed, 150))

# ---- IKE SA keys (RFC 7296 section 2.14) ----
ni = pattern(32, 3)
nr = pattern(32, 4)
g_ir = pattern(256, 5)
spi_i = bytes.fromhex('0102030405060708')
spi_r = bytes.fromhex('1112131415161718')
emit('ike_ni', ni)
emit('ike_nr', nr)
emit('ike_g_ir', g_ir)


def ike_keys(h, skeyseed, integ_len, encr_len):
    d = len(prf(h, b'', b''))
    ks = prf_plus(h, skeyseed, ni + nr + spi_i + spi_r, 3 * d + 2 * integ_len + 2 * encr_len)
    names = ['sk_d', 'sk_ai', 'sk_ar', 'sk_ei', 'sk_er', 'sk_pi', 'sk_pr']
    sizes = [d, integ_len, integ_len, encr_len, encr_len, d, d]
    res, off = {}, 0
    for n, s in zip(names, sizes):
        res[n] = ks[off:off + s]
        off += s
    return res


# AES-CBC-256, HMAC-SHA2-256-128 (key 32), PRF HMAC-SHA2-256
skeyseed = prf('sha256', ni + nr, g_ir)
emit('cbc256_skeyseed', skeyseed)
cbc = ike_keys('sha256', skeyseed, 32, 32)
for k, v in cbc.items():
    emit(f'cbc256_{k}', v)
# AES-GCM-16-128 (key 16 + salt 4), no integrity, PRF HMAC-SHA2-384
skeyseed = prf('sha384', ni + nr, g_ir)
gcm = ike_keys('sha384', skeyseed, 0, 20)
for k, v in gcm.items():
    emit(f'gcm128_{k}', v)
# Rekey (section 2.18): old PRF sha256 with the CBC SA's SK_d, new suite AES-CBC-128 with
# HMAC-SHA2-512-256 (key 64) and PRF HMAC-SHA2-512.
skeyseed = prf('sha256', cbc['sk_d'], g_ir + ni + nr)
rekey = ike_keys('sha512', skeyseed, 64, 16)
for k, v in rekey.items():
    emit(f'rekey_{k}', v)

# ---- CHILD_SA KEYMAT (section 2.17) ----
emit('keymat_no_pfs', prf_plus('sha256', cbc['sk_d'], ni + nr, 2 * (32 + 32)))
emit('keymat_pfs', prf_plus('sha256', cbc['sk_d'], g_ir + ni + nr, 2 * 36))

# ---- SK payload ----
aad = bytes.fromhex('0102030405060708111213141516171829202508000000020000009c') + \
    bytes.fromhex('21000080')
plain = pattern(45, 9)
emit('sk_aad', aad)
emit('sk_plain', plain)
# AES-CBC-128 + HMAC-SHA2-256-128: zero padding to the block, then the pad length octet
enc_key = pattern(16, 10)
integ_key = pattern(32, 11)
iv = pattern(16, 12)
padlen = (-(len(plain) + 1)) % 16
clear = plain + bytes(padlen) + bytes([padlen])
enc = Cipher(algorithms.AES(enc_key), modes.CBC(iv)).encryptor()
ct = enc.update(clear) + enc.finalize()
icv = hmac.new(integ_key, aad + iv + ct, hashlib.sha256).digest()[:16]
emit('sk_cbc_key', enc_key)
emit('sk_cbc_integ_key', integ_key)
emit('sk_cbc_iv', iv)
emit('sk_cbc_body', iv + ct + icv)
# AES-GCM-16-256: key || salt, 8-byte IV, AAD = header through the SK generic header, no padding
key_salt = pattern(36, 13)
iv8 = pattern(8, 14)
clear = plain + bytes([0])
sealed = AESGCM(key_salt[:32]).encrypt(key_salt[32:] + iv8, clear, aad)
emit('sk_gcm_key', key_salt)
emit('sk_gcm_iv', iv8)
emit('sk_gcm_body', iv8 + sealed)

# Authentic bodies whose pad length octet exceeds what was decrypted (must be refused)
clear = bytes(15) + bytes([200])
enc = Cipher(algorithms.AES(enc_key), modes.CBC(iv)).encryptor()
ct = enc.update(clear) + enc.finalize()
icv = hmac.new(integ_key, aad + iv + ct, hashlib.sha256).digest()[:16]
emit('sk_cbc_bad_pad_body', iv + ct + icv)
emit('sk_gcm_bad_pad_body', iv8 + AESGCM(key_salt[:32]).encrypt(key_salt[32:] + iv8,
                                                                 bytes(9) + bytes([10]), aad))

# ---- AUTH (section 2.15) ----
real_message = pattern(120, 15)
peer_nonce = pattern(32, 16)
sk_p = pattern(32, 17)
id_body = bytes([1, 0, 0, 0, 192, 0, 2, 1])  # ID_IPV4_ADDR 192.0.2.1
psk = b'cisco123-dmvpn'
octets = real_message + peer_nonce + prf('sha256', sk_p, id_body)
emit('auth_real_message', real_message)
emit('auth_peer_nonce', peer_nonce)
emit('auth_sk_p', sk_p)
emit('auth_id_body', id_body)
emit('auth_signed_octets', octets)
emit('auth_psk_sha256', prf('sha256', prf('sha256', psk, b'Key Pad for IKEv2'), octets))
emit('auth_psk_sha512', prf('sha512', prf('sha512', psk, b'Key Pad for IKEv2'), octets))

print('// Generated by tests/unit/ike_vectors.py (python3 hmac/hashlib, python3-cryptography);')
print('// do not edit: rerun the script.')
print('#pragma once')
print()
print('namespace ike_vectors {')
print()
print('\n'.join(out))
print()
print('}  // namespace ike_vectors')
