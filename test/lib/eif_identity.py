#!/usr/bin/python3
"""eif_identity: reads EIF metadata the way nitro-cli does, only stricter; an independent check.

nitro-cli (aws-nitro-enclaves-image-format) deserialises the metadata section (type 5) into
EifIdentityInfo with serde: ImageName and ImageVersion strings, BuildMetadata with the five
strings BuildTime, BuildTool, BuildToolVersion, OperatingSystem, KernelVersion, DockerInfo and
CustomMetadata as serde_json::Value without a default (so both must be present), and serde_json
refuses duplicate fields. This reader requires exactly those members (nothing more, in any
order), CustomMetadata null or an object (what `--metadata` takes), and compact UTF-8 JSON.

  eif_identity.py eif FILE...              every FILE's metadata; prints one line per file
  eif_identity.py describe JSON [EIF]      `nsign eif describe` output has nitro-cli
                                           describe-eif's members, names and shapes (and, given
                                           the EIF, the values of its metadata)
  eif_identity.py extract EIF DIR          DIR/kernel, DIR/cmdline and DIR/initrd (the ramdisks
                                           concatenated, as QEMU's EIF loader does), to boot the
                                           same image on a machine that cannot load an EIF
Exit 0 when every check passes, 1 with one line per failure on stderr.
"""
import json
import re
import struct
import sys
import zlib

TOP = ["ImageName", "ImageVersion", "BuildMetadata", "DockerInfo", "CustomMetadata"]
BUILD = ["BuildTime", "BuildTool", "BuildToolVersion", "OperatingSystem", "KernelVersion"]


class Bad(Exception):
    pass


def no_dups(pairs):
    keys = [k for k, _ in pairs]
    dup = {k for k in keys if keys.count(k) > 1}
    if dup:
        raise Bad("duplicate member(s) %s" % sorted(dup))
    return dict(pairs)


def sections(data):
    if len(data) < 548 or data[:4] != b".eif":
        raise Bad("not an EIF (magic)")
    version, = struct.unpack(">H", data[4:6])
    n, = struct.unpack(">H", data[26:28])
    offs = struct.unpack(">32Q", data[28:284])
    sizes = struct.unpack(">32Q", data[284:540])
    crc, = struct.unpack(">I", data[544:548])
    if zlib.crc32(data[:544] + data[548:]) != crc:
        raise Bad("CRC mismatch")
    out = []
    for i in range(n):
        t, flags, size = struct.unpack(">HHQ", data[offs[i]:offs[i] + 12])
        if size != sizes[i]:
            raise Bad("section %d size disagrees with the header" % i)
        out.append((t, data[offs[i] + 12:offs[i] + 12 + size]))
    return version, out


def check_identity(raw):
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Bad("metadata is not UTF-8")
    try:
        md = json.loads(text, object_pairs_hook=no_dups)
    except ValueError as e:
        raise Bad("metadata is not JSON: %s" % e)
    if not isinstance(md, dict):
        raise Bad("metadata is not an object")
    if sorted(md) != sorted(TOP):
        raise Bad("metadata members %s, want exactly %s" % (sorted(md), sorted(TOP)))
    for k in ("ImageName", "ImageVersion"):
        if not isinstance(md[k], str):
            raise Bad("%s is not a string" % k)
    bm = md["BuildMetadata"]
    if not isinstance(bm, dict) or sorted(bm) != sorted(BUILD):
        raise Bad("BuildMetadata members %s, want exactly %s" %
                  (sorted(bm) if isinstance(bm, dict) else type(bm).__name__, sorted(BUILD)))
    for k in BUILD:
        if not isinstance(bm[k], str):
            raise Bad("BuildMetadata.%s is not a string" % k)
    if not isinstance(md["DockerInfo"], dict):
        raise Bad("DockerInfo is not an object")
    if md["CustomMetadata"] is not None and not isinstance(md["CustomMetadata"], dict):
        raise Bad("CustomMetadata is neither null nor an object")
    if json.dumps(md, separators=(",", ":"), ensure_ascii=False) != text:
        raise Bad("metadata is not compact JSON (serde_json::to_vec's form)")
    return md


def identity_of(path):
    with open(path, "rb") as f:
        version, secs = sections(f.read())
    metas = [d for t, d in secs if t == 5]
    if version != 4 or len(metas) != 1:
        raise Bad("v%d file with %d metadata sections (want v4 with one)" % (version, len(metas)))
    return check_identity(metas[0])


def check_describe(path, eif=None):
    with open(path) as f:
        d = json.load(f, object_pairs_hook=no_dups)
    want = {"EifVersion": int, "Measurements": dict, "IsSigned": bool, "CheckCRC": bool,
            "ImageName": str, "ImageVersion": str, "Metadata": dict}
    for k, t in want.items():
        if not isinstance(d.get(k), t) or (t is int and isinstance(d.get(k), bool)):
            raise Bad("describe: %s missing or not a %s" % (k, t.__name__))
    m = d["Measurements"]
    if m.get("HashAlgorithm") != "Sha384 { ... }":
        raise Bad("describe: Measurements.HashAlgorithm is %r" % m.get("HashAlgorithm"))
    pcrs = ["PCR0", "PCR1", "PCR2"] + (["PCR8"] if d["IsSigned"] else [])
    if sorted(m) != sorted(["HashAlgorithm"] + pcrs):
        raise Bad("describe: Measurements members %s" % sorted(m))
    for p in pcrs:
        if not re.fullmatch(r"[0-9a-f]{96}", m[p]):
            raise Bad("describe: %s is not 96 lowercase hex digits" % p)
    md = d["Metadata"]
    for k in BUILD:
        if not isinstance(md.get(k), str):
            raise Bad("describe: Metadata.%s missing or not a string" % k)
    if "DockerInfo" not in md:
        raise Bad("describe: Metadata.DockerInfo missing")
    if "CustomMetadata" in md:
        raise Bad("describe: CustomMetadata must be flattened into Metadata, not a member")
    if eif:
        ident = identity_of(eif)
        flat = dict(ident["BuildMetadata"], DockerInfo=ident["DockerInfo"])
        flat.update(ident["CustomMetadata"] or {})
        if md != flat:
            raise Bad("describe: Metadata %s, the file has %s" % (md, flat))
        if (d["ImageName"], d["ImageVersion"]) != (ident["ImageName"], ident["ImageVersion"]):
            raise Bad("describe: ImageName/ImageVersion differ from the file's")


def extract(path, out):
    with open(path, "rb") as f:
        _version, secs = sections(f.read())
    parts = {1: b"", 2: b"", 3: b""}
    for t, d in secs:
        if t in parts:
            parts[t] += d
    if not parts[1] or not parts[3]:
        raise Bad("no kernel or no ramdisk section")
    for t, name in ((1, "kernel"), (2, "cmdline"), (3, "initrd")):
        with open("%s/%s" % (out, name), "wb") as f:
            f.write(parts[t].rstrip(b"\0") if t == 2 else parts[t])


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "extract":
        try:
            extract(sys.argv[2], sys.argv[3])
        except (Bad, OSError, struct.error) as e:
            print("%s: %s" % (sys.argv[2], e), file=sys.stderr)
            sys.exit(1)
        sys.exit(0)
    if len(sys.argv) < 3 or sys.argv[1] not in ("eif", "describe"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    bad = 0
    if sys.argv[1] == "eif":
        for p in sys.argv[2:]:
            try:
                md = identity_of(p)
                print("%s: EifIdentityInfo ok ImageName=%s CustomMetadata=%s" %
                      (p, md["ImageName"], json.dumps(md["CustomMetadata"])))
            except (Bad, OSError, struct.error) as e:
                print("%s: %s" % (p, e), file=sys.stderr)
                bad += 1
    else:
        try:
            check_describe(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
        except (Bad, OSError, ValueError) as e:
            print("%s: %s" % (sys.argv[2], e), file=sys.stderr)
            bad += 1
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
