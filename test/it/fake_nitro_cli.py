#!/usr/bin/python3
"""fake_nitro_cli: a stand-in for nitro-cli, for run-enclave/stop-enclave tests and the demo.

An "enclave" is a local process: `run-enclave` starts FAKE_ENCLAVE_CMD (default
"$NSIGN enclave-entrypoint") with the caller's environment, its output in
STATE/NAME.console, and answers like nitro-cli (JSON on stdout). When
NSIGN_ENCLAVE_HEARTBEAT_ADDR=unix:PATH is set it listens there first and, like nitro-cli,
treats a missing 0xB7 heartbeat as a failed boot (after FAKE_HEARTBEAT_TIMEOUT_S, default 30). `describe-enclaves`, `terminate-enclave
--enclave-name N` and `console --enclave-name N` behave like the real ones. Arguments are checked
as strictly as nitro-cli checks them. FAKE_NITRO_FAIL=allocator makes run-enclave fail the way
nitro-cli does when the allocator has too little memory (E27); an EIF more than a quarter of
--memory fails with E26 as nitro-cli's own rule does. `--version` prints FAKE_NITRO_VERSION
(default 1.4.2) as nitro-cli does. FAKE_CONSOLE_LAG_S=N makes `console`
deliver each piece of output N seconds after it was written (a slow console). While the file
STATE/describe-fail exists, `describe-enclaves` fails as a nitro-cli that cannot read a running
enclave's EIF metadata does (exit 1, an error and no JSON).

The enclave's environment is the image's, as on Nitro, where nothing of the parent's environment
reaches the enclave: the parent's AWS_REGION, AWS_DEFAULT_REGION, KMS_KEY_ID and
AWS_ENDPOINT_URL_KMS are dropped (what the enclave needs of them comes in its configuration frame),
and so are NSIGN_ALLOW_DEBUG_MODE, NSIGN_ALLOW_ANONYMOUS_CLIENTS and NSIGN_MIN_POLICY_EPOCH (the
image's own allowances and minimum policy: only its measured env may set them),
and when --eif-path is a real EIF the KEY=VALUE lines of the `env` file at the root of its last
ramdisk (both layouts put the image's environment there) are added. The rest of the caller's
environment (the tests' address overrides standing in for vsock, the NSM socket, the CA) stays.

Each enclave boots with a fresh NSM: when FAKE_NSM_RESET_URL is set, run-enclave GETs it first
(nsm_fake.py --reset-port-file), so PCR16 starts unlocked and zero again.

State lives in FAKE_NITRO_STATE (required); every call is appended to STATE/calls.log.
"""
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time

STATE = os.environ.get("FAKE_NITRO_STATE")


def die(msg, code=1):
    print(msg, file=sys.stderr)
    sys.exit(code)


def load():
    try:
        with open(os.path.join(STATE, "enclaves.json")) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def save(d):
    tmp = os.path.join(STATE, "enclaves.json.tmp")
    with open(tmp, "w") as f:
        json.dump(d, f)
    os.rename(tmp, os.path.join(STATE, "enclaves.json"))


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie of ours counts as dead
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def opts(args, spec):
    """Parses --name value / --flag like nitro-cli's clap parser; unknown options fail."""
    out, i = {}, 0
    while i < len(args):
        a = args[i]
        if not a.startswith("--") or a[2:] not in spec:
            die(f"error: Found argument '{a}' which wasn't expected", 2)
        if spec[a[2:]]:
            if i + 1 >= len(args):
                die(f"error: The argument '{a}' requires a value but none was supplied", 2)
            out[a[2:]] = args[i + 1]
            i += 2
        else:
            out[a[2:]] = True
            i += 1
    return out


def describe(name, e):
    return {"EnclaveName": name, "EnclaveID": e["id"], "ProcessID": e["pid"],
            "EnclaveCID": e["cid"], "NumberOfCPUs": e["cpus"], "CPUIDs": [1, 3][: e["cpus"]],
            "MemoryMiB": e["mem"], "State": "RUNNING",
            "Flags": "DEBUG_MODE" if e["debug"] else "NONE"}


# The image's minimum policy and debug allowance come from the image alone, never the parent.
PARENT_ONLY = ("AWS_REGION", "AWS_DEFAULT_REGION", "KMS_KEY_ID", "AWS_ENDPOINT_URL_KMS",
               "NSIGN_ALLOW_DEBUG_MODE", "NSIGN_ALLOW_ANONYMOUS_CLIENTS", "NSIGN_MIN_POLICY_EPOCH")


def image_env(eif_path):
    """The `env` file at the root of the EIF's last ramdisk (newc cpio), as KEY=VALUE pairs."""
    with open(eif_path, "rb") as f:
        data = f.read()
    if data[:4] != b".eif":
        return {}
    n = struct.unpack(">H", data[26:28])[0]
    offs = struct.unpack(">32Q", data[28:284])
    rd = None
    for i in range(n):
        t, _, size = struct.unpack(">HHQ", data[offs[i]:offs[i] + 12])
        if t == 3:
            rd = data[offs[i] + 12:offs[i] + 12 + size]
    pos, out = 0, {}
    while rd is not None and pos + 110 <= len(rd) and rd[pos:pos + 6] == b"070701":
        fsize = int(rd[pos + 54:pos + 62], 16)
        nsize = int(rd[pos + 94:pos + 102], 16)
        name = rd[pos + 110:pos + 110 + nsize - 1].decode()
        pos = (pos + 110 + nsize + 3) & ~3
        body = rd[pos:pos + fsize]
        pos = (pos + fsize + 3) & ~3
        if name == "env":
            for line in body.decode().splitlines():
                k, sep, v = line.partition("=")
                if sep:
                    out[k] = v
        if name == "TRAILER!!!":
            break
    return out


def heartbeat_listener():
    addr = os.environ.get("NSIGN_ENCLAVE_HEARTBEAT_ADDR", "")
    if not addr.startswith("unix:"):
        return None
    path = addr[5:]
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(1)
    return s


def run_enclave(args):
    o = opts(args, {"eif-path": 1, "cpu-count": 1, "memory": 1, "enclave-cid": 1,
                    "enclave-name": 1, "debug-mode": 0, "attach-console": 0})
    for req in ("eif-path", "cpu-count", "memory"):
        if req not in o:
            die(f"error: The following required arguments were not provided: --{req}", 2)
    if not os.path.isfile(o["eif-path"]):
        die(f"[ E19 ] File operation failure. Such error appears when the system fails to "
            f"perform the requested file operations, such as opening the EIF file "
            f"'{o['eif-path']}'.")
    mem, cpus = int(o["memory"]), int(o["cpu-count"])
    min_mib = -(-os.path.getsize(o["eif-path"]) * 4 // (1024 * 1024))
    if mem < min_mib:
        die(f"[ E26 ] Insufficient memory requested. User provided `memory` is {mem} MB, but "
            f"based on the EIF file size, the minimum memory should be {min_mib} MB\n\n"
            "For more details, please visit https://docs.aws.amazon.com/enclaves/latest/user/"
            "cli-errors.html#E26")
    if os.environ.get("FAKE_NITRO_FAIL") == "allocator":
        die(f"[ E27 ] Insufficient memory available. User provided `memory` is {mem} MB, which "
            "is more than the available hugepage memory.\nYou can increase the available memory "
            "by editing the `memory_mib` value from '/etc/nitro_enclaves/allocator.yaml' and "
            "then restart the nitro-enclaves-allocator.service.\n\nFor more details, please "
            "visit https://docs.aws.amazon.com/enclaves/latest/user/cli-errors.html#E27")
    name = o.get("enclave-name") or os.path.basename(o["eif-path"]).split(".")[0]
    cid = int(o.get("enclave-cid", 16))
    d = load()
    for n, e in list(d.items()):
        if alive(e["pid"]) and (n == name or e["cid"] == cid):
            die(f"[ E51 ] Enclave with name or CID {cid} already running.")
    if os.environ.get("FAKE_NSM_RESET_URL"):
        import urllib.request
        urllib.request.urlopen(os.environ["FAKE_NSM_RESET_URL"], timeout=10).read()
    hb = heartbeat_listener()
    cmd = os.environ.get("FAKE_ENCLAVE_CMD")
    argv = cmd.split() if cmd else [os.environ["NSIGN"], "enclave-entrypoint"]
    console = open(os.path.join(STATE, f"{name}.console"), "ab")
    env = {k: v for k, v in os.environ.items() if k not in PARENT_ONLY}
    env.update(image_env(o["eif-path"]))
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=console, stderr=console,
                         start_new_session=True, env=env)
    if hb is not None:
        hb.settimeout(float(os.environ.get("FAKE_HEARTBEAT_TIMEOUT_S", "30")))
        try:
            c, _ = hb.accept()
            c.settimeout(10)
            b = c.recv(1)
            if b != b"\xb7":
                raise OSError("bad heartbeat byte")
            c.sendall(b)
            c.close()
        except OSError:
            p.kill()
            p.wait()
            die("[ E39 ] Enclave process connection failure. The enclave did not send its "
                "boot heartbeat; see the console for details.")
        finally:
            hb.close()
            os.unlink(os.environ["NSIGN_ENCLAVE_HEARTBEAT_ADDR"][5:])
    e = {"pid": p.pid, "cid": cid, "cpus": cpus, "mem": mem, "debug": "debug-mode" in o,
         "id": f"i-0fake0000000000000-enc{p.pid:016x}"}
    d[name] = e
    save(d)
    print("Started enclave with enclave-cid: %d, memory: %d MiB, cpu-ids: %s"
          % (cid, mem, [1, 3][:cpus]))
    print(json.dumps(describe(name, e), indent=2))


def describe_enclaves(args):
    opts(args, {"metadata": 0})
    if os.path.exists(os.path.join(STATE, "describe-fail")):
        die("[ E11 ] Unspecified error. Failed to describe enclave: missing field "
            "`CustomMetadata` at line 1 column 300")
    d = load()
    print(json.dumps([describe(n, e) for n, e in d.items() if alive(e["pid"])], indent=2))


def terminate(args):
    o = opts(args, {"enclave-name": 1, "enclave-id": 1, "all": 0})
    d = load()
    names = list(d) if "all" in o else [n for n, e in d.items()
                                        if n == o.get("enclave-name") or
                                        e["id"] == o.get("enclave-id")]
    if not names:
        die("[ E44 ] Enclave not found: no enclave with that name or ID is running.")
    for n in names:
        pid = d[n]["pid"]
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        for _ in range(100):
            if not alive(pid):
                break
            time.sleep(0.05)
        else:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        print(json.dumps({"EnclaveName": n, "EnclaveID": d[n]["id"], "Terminated": True},
                         indent=2))
        del d[n]
    save(d)


def console(args):
    o = opts(args, {"enclave-name": 1, "enclave-id": 1, "disconnect-timeout": 1})
    d = load()
    name = o.get("enclave-name")
    if name not in d:
        die("[ E44 ] Enclave not found.")
    if not d[name]["debug"]:
        die("[ E21 ] Console is only available for enclaves started in debug mode.")
    path = os.path.join(STATE, f"{name}.console")
    lag = float(os.environ.get("FAKE_CONSOLE_LAG_S", "0"))
    with open(path, "rb") as f:
        while True:
            running = alive(d[name]["pid"])
            chunk = f.read(65536)
            if chunk:
                time.sleep(lag)
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
            elif not running:
                return  # read after the enclave stopped: nothing more will come
            else:
                time.sleep(0.1)


def main():
    if not STATE:
        die("fake nitro-cli: FAKE_NITRO_STATE must be set")
    with open(os.path.join(STATE, "calls.log"), "a") as f:
        f.write(" ".join(sys.argv[1:]) + "\n")
    if sys.argv[1:] == ["--version"]:
        print("Nitro CLI " + os.environ.get("FAKE_NITRO_VERSION", "1.4.2"))
        return
    if len(sys.argv) < 2:
        die("usage: nitro-cli <run-enclave|describe-enclaves|terminate-enclave|console>", 2)
    cmds = {"run-enclave": run_enclave, "describe-enclaves": describe_enclaves,
            "terminate-enclave": terminate, "console": console}
    if sys.argv[1] not in cmds:
        die(f"error: Found argument '{sys.argv[1]}' which wasn't expected", 2)
    cmds[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
