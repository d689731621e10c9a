#!/usr/bin/env python3
"""Recompute testdata/aesgcm_vectors.json (core/crypto's AESGCMSuite) with
an implementation unrelated to Go's: Python "cryptography" (OpenSSL) for
X25519, HKDF-SHA256 and AES-256-GCM. Run: python3 testdata/crosscheck_aesgcm.py
"""
import json, os, sys
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives import hashes, serialization

RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


def hkdf(secret, salt, info, n):
    return HKDF(algorithm=hashes.SHA256(), length=n, salt=salt, info=info).derive(secret)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    v = json.load(open(os.path.join(here, "aesgcm_vectors.json")))
    h = bytes.fromhex
    good = True

    salt = h(v["seal_salt"])
    okm = hkdf(h(v["seal_key"]), salt, b"skein/v1/aes256gcm/seal", 44)
    box = salt + AESGCM(okm[:32]).encrypt(okm[32:], h(v["seal_plaintext"]), h(v["seal_ad"]))
    ok = box.hex() == v["seal_box"]
    print(("ok   " if ok else "FAIL ") + "seal")
    good &= ok

    rec = X25519PrivateKey.from_private_bytes(h(v["sealto_recipient_private"]))
    eph = X25519PrivateKey.from_private_bytes(h(v["sealto_ephemeral_private"]))
    rpub = rec.public_key().public_bytes(*RAW)
    epub = eph.public_key().public_bytes(*RAW)
    shared = eph.exchange(X25519PublicKey.from_public_bytes(rpub))
    okm = hkdf(shared, epub + rpub, b"skein/v1/aes256gcm/seal-to", 44)
    box = epub + AESGCM(okm[:32]).encrypt(okm[32:], h(v["sealto_plaintext"]), h(v["sealto_ad"]))
    ok = box.hex() == v["sealto_box"]
    print(("ok   " if ok else "FAIL ") + "seal to")
    good &= ok
    sys.exit(0 if good else 1)


if __name__ == "__main__":
    main()
