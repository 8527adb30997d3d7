"""drain_probe: holds a Sign call in flight through run-enclave's ingress (TLS ending in the
enclave) while TRIGGER (a shell command: stop-enclave --drain N) starts the drain, and checks,
printing TAP lines: the host's /ready turns 503 DRAINING, the enclave sends both GOAWAYs, the host's
ingress refuses a new connection (UNAVAILABLE before any call is taken) while the open one is
still relayed, and the call in flight is answered with a signature that verifies against the
keys file.
Usage: drain_probe.py GRPC_PORT READY_PORT KEYS_JSON TRIGGER_COMMAND"""
import base64
import json
import os
import subprocess
import sys
import tempfile
import time

import h2drain
from cryptography.hazmat.primitives.asymmetric import ed25519
from tap import check, done

ROOT = os.environ["NS_ROOT"]
port, rport, keys_path, trigger = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
tmp = tempfile.mkdtemp(prefix="nsign-drain-pb-")
subprocess.run(["protoc", "-I" + os.path.join(ROOT, "proto"), "--python_out=" + tmp,
                "nsign.proto"], check=True)
sys.path.insert(0, tmp)
import nsign_pb2 as pb  # noqa: E402

key = [k for k in json.load(open(keys_path))["keys"] if k["algorithm"] == "ed25519"][0]
pub = ed25519.Ed25519PrivateKey.from_private_bytes(
    base64.b64decode(key["private_key"])[:32]).public_key()
msg = b"in flight across a rolling upgrade"
cert, ckey = os.environ.get("DEMO_CLIENT_CERT"), os.environ.get("DEMO_CLIENT_KEY")
ready_url = "http://127.0.0.1:%d/ready" % rport

st, body = h2drain.ready(ready_url)
check(st == 200, "host /ready is 200 before the drain", (st, body))
a = h2drain.Call(h2drain.tls_socket("127.0.0.1", port, cert, ckey),
                 pb.SignRequest(key_id=key["id"], message=msg).SerializeToString())
trig = subprocess.Popen(trigger, shell=True)
for _ in range(100):
    st, body = h2drain.ready(ready_url)
    if st == 503:
        break
    time.sleep(0.05)
check(st == 503 and "DRAINING" in body, "drain: host /ready turns 503 DRAINING", (st, body))
g = a.wait_goaways(2, limit=30)
check(len(g) >= 2 and g[0] == 2**31 - 1 and g[1] == 1,
      "drain: the enclave sends the notice GOAWAY, then the final one naming stream 1", g)
# The host's ingress has stopped accepting (its bridges closed their listeners): a new
# connection is refused, and the client (or the balancer) goes to another replica.
try:
    h2drain.tls_socket("127.0.0.1", port, cert, ckey).close()
    refused = False
except ConnectionRefusedError:
    refused = True
except OSError:
    refused = False
check(refused, "drain: the host's ingress refuses a new connection")
hdr, resp = a.finish()
ok = hdr.get("grpc-status") == "0" and bool(resp)
if ok:
    try:
        pub.verify(pb.SignResponse.FromString(resp).signature, msg)
    except Exception:  # noqa: BLE001 - any verification failure fails the check
        ok = False
check(ok, "drain: the call in flight is answered OK, its signature verifies", hdr)
check(trig.wait(timeout=120) == 0, "stop-enclave --drain exits 0")
done()
