"""frost_dealer.py: TEST DATA ONLY. A trusted dealer for FROST(Ed25519, SHA-512) (RFC 9591
appendix C: Shamir shares of a random group secret, verifying shares = share * G), in pure
python (RFC 8032's edwards25519 formulas), so the integration tests do not depend on the code
they test. Not constant time; never use it for real keys.

keys_entries(t, n, key_id, allow) -> (group_public_key_hex, [entry dict per participant 1..n]),
each entry exactly the keys-file FROST entry of issue 26.
"""
import os

P = 2 ** 255 - 19
L = 2 ** 252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
I = pow(2, (P - 1) // 4, P)


def _xrecover(y):
    xx = (y * y - 1) * pow(D * y * y + 1, P - 2, P)
    x = pow(xx, (P + 3) // 8, P)
    if (x * x - xx) % P != 0:
        x = x * I % P
    if x % 2 != 0:
        x = P - x
    return x


_BY = 4 * pow(5, P - 2, P) % P
B = (_xrecover(_BY), _BY, 1, _xrecover(_BY) * _BY % P)


def _add(p, q):
    (x1, y1, z1, t1), (x2, y2, z2, t2) = p, q
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = t1 * 2 * D * t2 % P
    dd = z1 * 2 * z2 % P
    e, f, g, h = b - a, dd - c, dd + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def mul(k, p=B):
    q = (0, 1, 1, 0)
    while k > 0:
        if k & 1:
            q = _add(q, p)
        p = _add(p, p)
        k >>= 1
    return q


def encode(p):
    x, y, z, _ = p
    zi = pow(z, P - 2, P)
    x, y = x * zi % P, y * zi % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def scalar_bytes(k):
    return (k % L).to_bytes(32, "little")


def rand_scalar():
    return int.from_bytes(os.urandom(64), "little") % L


def deal(t, n):
    """(secret, [share_1..share_n]) of a random degree t-1 polynomial."""
    coeffs = [rand_scalar() for _ in range(t)]
    shares = []
    for i in range(1, n + 1):
        v = 0
        for c in reversed(coeffs):
            v = (v * i + c) % L
        shares.append(v)
    return coeffs[0], shares


def keys_entries(t, n, key_id, allow=None):
    secret, shares = deal(t, n)
    gpk = encode(mul(secret)).hex()
    vshares = {str(i + 1): encode(mul(s)).hex() for i, s in enumerate(shares)}
    entries = []
    for i, s in enumerate(shares):
        e = {"id": key_id, "algorithm": "frost-ed25519-sha512", "identifier": i + 1,
             "signing_share": scalar_bytes(s).hex(), "group_public_key": gpk,
             "verifying_shares": vshares, "min_signers": t, "max_signers": n}
        if allow is not None:
            e["allow"] = list(allow)
        entries.append(e)
    return gpk, entries
