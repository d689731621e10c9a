#!/usr/bin/env python3
"""Recompute testdata/vectors.json with an implementation unrelated to Go's:
Python "cryptography" (OpenSSL) for Ed25519, X25519, HKDF-SHA256,
ChaCha20-Poly1305 and Argon2id; HChaCha20 (for XChaCha20) is written out
here from RFC draft-irtf-cfrg-xchacha. Run: python3 testdata/crosscheck.py
"""
import hashlib, hmac, json, struct, sys, os
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives import hashes, serialization

RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


def hchacha20(key, nonce16):
    def rotl(v, c):
        return ((v << c) & 0xFFFFFFFF) | (v >> (32 - c))

    def qr(s, a, b, c, d):
        s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = rotl(s[d] ^ s[a], 16)
        s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = rotl(s[b] ^ s[c], 12)
        s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = rotl(s[d] ^ s[a], 8)
        s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = rotl(s[b] ^ s[c], 7)

    s = list(struct.unpack("<4I", b"expand 32-byte k")) + list(struct.unpack("<8I", key)) + list(struct.unpack("<4I", nonce16))
    for _ in range(10):
        qr(s, 0, 4, 8, 12); qr(s, 1, 5, 9, 13); qr(s, 2, 6, 10, 14); qr(s, 3, 7, 11, 15)
        qr(s, 0, 5, 10, 15); qr(s, 1, 6, 11, 12); qr(s, 2, 7, 8, 13); qr(s, 3, 4, 9, 14)
    return struct.pack("<8I", *(s[0:4] + s[12:16]))


def xchacha_open(key, nonce24, ct, ad):
    sub = hchacha20(key, nonce24[:16])
    return ChaCha20Poly1305(sub).decrypt(b"\0\0\0\0" + nonce24[16:], ct, ad)


def hkdf(secret, salt, info, n):
    return HKDF(algorithm=hashes.SHA256(), length=n, salt=salt, info=info).derive(secret)


def check(name, ok):
    print(("ok   " if ok else "FAIL ") + name)
    return ok


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    v = json.load(open(os.path.join(here, "vectors.json")))
    h = bytes.fromhex
    good = True

    acct = Ed25519PrivateKey.from_private_bytes(h(v["account_seed"]))
    apub = acct.public_key().public_bytes(*RAW)
    good &= check("account public key", apub.hex() == v["account_public"])
    fp = hashlib.sha256(b"skein/v1/fingerprint\0" + apub).digest()[:8].hex()
    good &= check("fingerprint", fp == v["account_fingerprint"])
    msg = v["sign_domain"].encode() + b"\0" + h(v["sign_message"])
    good &= check("domain-separated signature", acct.sign(msg).hex() == v["signature"])

    dev = Ed25519PrivateKey.from_private_bytes(h(v["device_seed"]))
    dpub = dev.public_key().public_bytes(*RAW)
    dx = X25519PrivateKey.from_private_bytes(h(v["device_x25519_private"]))
    dxpub = dx.public_key().public_bytes(*RAW)
    signed = bytes([1]) + apub + dpub + dxpub + struct.pack(">q", v["cert_created"])
    cert = signed + acct.sign(b"skein/v1/device-cert\0" + signed)
    good &= check("device certificate", cert.hex() == v["certificate"])
    Ed25519PublicKey.from_public_bytes(apub).verify(h(v["certificate"])[-64:], b"skein/v1/device-cert\0" + signed)

    eph = X25519PrivateKey.from_private_bytes(h(v["sealto_ephemeral_private"]))
    epub = eph.public_key().public_bytes(*RAW)
    box = h(v["sealto_box"])
    good &= check("sealto ephemeral key", box[:32] == epub)
    shared = dx.exchange(X25519PublicKey.from_public_bytes(box[:32]))
    okm = hkdf(shared, box[:32] + dxpub, b"skein/v1/seal-to", 56)
    plain = xchacha_open(okm[:32], okm[32:], box[32:], h(v["sealto_ad"]))
    good &= check("sealto open", plain == h(v["sealto_plaintext"]))

    sb = h(v["seal_box"])
    plain = xchacha_open(h(v["seal_key"]), sb[:24], sb[24:], h(v["seal_ad"]))
    good &= check("seal open", plain == h(v["seal_plaintext"]))

    plain = xchacha_open(h(v["seal_once_key"]), bytes(24), h(v["seal_once_box"]), h(v["seal_once_ad"]))
    good &= check("seal once open", plain == h(v["seal_once_plaintext"]))

    ck = h(v["ratchet_chain_key"])
    mks = []
    for _ in v["ratchet_message_keys"]:
        mks.append(hmac.new(ck, b"skein/v1/ratchet/message-key", hashlib.sha256).hexdigest())
        ck = hmac.new(ck, b"skein/v1/ratchet/chain-key", hashlib.sha256).digest()
    good &= check("ratchet message keys", mks == v["ratchet_message_keys"])
    good &= check("ratchet chain key", ck.hex() == v["ratchet_chain_key_after"])

    dk = hkdf(h(v["derive_secret"]), h(v["derive_salt"]), v["derive_info"].encode(), 32)
    good &= check("derive key", dk.hex() == v["derive_out"])

    meta = h(v["keystore_meta"])
    assert meta[:4] == b"SKKS" and meta[4] == 1 and meta[5] == 1
    t, m = struct.unpack(">II", meta[6:14])
    p = meta[14]
    salt = meta[15:31]
    header = meta[:31]
    kek = Argon2id(salt=salt, length=32, iterations=t, lanes=p, memory_cost=m).derive(v["keystore_passphrase"].encode())
    w = meta[31:]
    master = xchacha_open(kek, w[:24], w[24:], b"skein/v1/keystore-master\0" + header)
    for name, entry in v["keystore_entries"].items():
        e = h(entry)
        assert e[0] == 1
        secret = xchacha_open(master, e[1:25], e[25:], b"skein/v1/keystore-entry\0" + name.encode())
        good &= check("keystore entry " + name, secret.hex() == v["keystore_secrets"][name])
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
