"""Which shard owns a key, computed in Python from the contract, for the
tests: API.md's hash_key (SHA-1, big-endian, modulo 2^63) and Lamping and
Veach's jump consistent hash, written from the paper (proto/cart_ring.c is
the service's own)."""
import hashlib


def hash_key(text):
    digest = hashlib.sha1(text.encode("utf-8")).digest()
    return int.from_bytes(digest, "big") % 2**63


def jump(key, buckets):
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) % 2**64
        j = int((b + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return b
