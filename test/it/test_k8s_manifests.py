"""dist/k8s (issue 23), offline, no cluster: every manifest validated against the OpenAPI schemas
of a pinned Kubernetes (kubernetes-models 5.1.0 = Kubernetes v1.27.1, with ajv; npm, pinned by
test/lib/k8s/package-lock.json, installed once into the machine cache like grpc-js: without the
registry and the cache this test fails, it never skips), a broken copy shown to fail; then what
the schemas cannot know, checked against run-enclave itself: every environment name is one
run-enclave reads (src/enclave/runcfg.c), `nsign run-enclave --dry-run` accepts the manifest's
environment, the probes hit /ready on the port NSIGN_HOST_READY_LISTEN binds, the gRPC port is
NSIGN_HOST_GRPC_LISTEN's, the NLB health check is that /ready, the grace period outlasts the
drain, the rolling update never goes below the replica count, the device plugin's resource and
hugepages are requested, and the PodDisruptionBudget selects the Deployment's pods.
The schemas of Kubernetes' OpenAPI v2 do not forbid unknown fields, so the fields this relies on
are checked by name below."""
import glob
import json
import os
import re
import subprocess
import tempfile

from tap import NSIGN, check, done

import yaml

ROOT = os.environ.get("NS_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
FILES = sorted(glob.glob(os.path.join(ROOT, "dist/k8s/*.yaml")))
check(len(FILES) >= 3, "dist/k8s has the manifests", FILES)

r = subprocess.run(["bash", os.path.join(ROOT, "test/lib/grpcjs/install.sh"),
                    os.path.join(ROOT, "test/lib/k8s")], capture_output=True, text=True)
check(r.returncode == 0, "the pinned validator is installed (npm ci, cached)", r.stderr)
MODULES = r.stdout.strip()
VALIDATE = os.path.join(ROOT, "test/lib/k8s/validate.mjs")


def validate(files):
    p = subprocess.run(["node", VALIDATE, MODULES] + files, capture_output=True, text=True)
    return p.returncode, [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")], \
        p.stderr


rc, res, err = validate(FILES)
for x in res:
    check(x["ok"], "schema (Kubernetes v1.27.1): %s %s in %s" % (
        x["apiVersion"], x["kind"], os.path.basename(x["file"])), x["error"])
check(rc == 0 and len(res) >= 4, "every document validated", err)

docs = {}
for f in FILES:
    for d in yaml.safe_load_all(open(f)):
        if d:
            docs[d["kind"]] = d
dep, pdb, svc = docs.get("Deployment"), docs.get("PodDisruptionBudget"), docs.get("Service")
check(dep and pdb and svc, "a Deployment, a PodDisruptionBudget and a Service")

# The validator can fail: the same Deployment with a port that is not a number.
with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as t:
    bad = json.loads(json.dumps(dep))
    bad["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "grpc"
    yaml.safe_dump(bad, t)
rc, res, _ = validate([t.name])
os.unlink(t.name)
check(rc == 1 and res and not res[0]["ok"] and "containerPort" in (res[0]["error"] or ""),
      "the validator rejects a broken Deployment (containerPort not an integer)", res)

pod = dep["spec"]["template"]["spec"]
c = [x for x in pod["containers"] if x["name"] == "run-enclave"][0]
env = {e["name"]: e.get("value", "") for e in c["env"]}
runcfg = open(os.path.join(ROOT, "src/enclave/runcfg.c")).read()
known = set(re.findall(r'"([A-Z][A-Z0-9_]+)"', runcfg))
unknown = sorted(n for n in env if n not in known)
check(not unknown, "every environment name is one run-enclave reads (runcfg.c)", unknown)

dry_env = {k: v for k, v in os.environ.items() if not k.startswith(("NSIGN_", "AWS_"))}
dry_env.update(env)
dry_env["NITRO_CLI"] = "nitro-cli"
p = subprocess.run([NSIGN, "run-enclave", "--dry-run"], env=dry_env, capture_output=True,
                   text=True)
check(p.returncode == 0, "run-enclave --dry-run accepts the manifest's environment",
      p.stderr[-2000:])
check("tcp:0.0.0.0:50051" in p.stdout and "tcp:0.0.0.0:9101" in p.stdout,
      "the dry run binds the ingress and /ready where the manifest says", p.stdout[-2000:])


def port_of(addr):
    return int(addr.rsplit(":", 1)[1])


ports = {x["name"]: x["containerPort"] for x in c["ports"]}
ready_port = port_of(env["NSIGN_HOST_READY_LISTEN"])
check(ports.get("ready") == ready_port and ports.get("grpc") ==
      port_of(env["NSIGN_HOST_GRPC_LISTEN"]) and ports.get("metrics") ==
      port_of(env["NSIGN_HOST_METRICS_LISTEN"]),
      "container ports are the ones run-enclave listens on", ports)
for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
    g = c.get(probe, {}).get("httpGet", {})
    port = ports.get(g.get("port")) if isinstance(g.get("port"), str) else g.get("port")
    check(g.get("path") == "/ready" and port == ready_port,
          "%s: GET /ready on run-enclave's readiness port" % probe, g)
grace = pod.get("terminationGracePeriodSeconds", 30)
drain = int(env.get("NSIGN_HOST_DRAIN_SECONDS", "30")) + \
    int(env.get("NSIGN_HOST_DRAIN_DELAY_SECONDS", "0"))
check(grace >= drain + 10, "terminationGracePeriodSeconds (%d) outlasts the drain (%d) and the "
      "stop" % (grace, drain))
live = c["livenessProbe"]
check(live["periodSeconds"] * live["failureThreshold"] > grace,
      "liveness cannot trip during a drain")
st = dep["spec"].get("strategy", {})
check(st.get("type") == "RollingUpdate" and st["rollingUpdate"].get("maxUnavailable") == 0,
      "rolling update: a new replica is ready before an old one drains", st)
req, lim = c["resources"]["requests"], c["resources"]["limits"]
check(req.get("aws.ec2.nitro/nitro_enclaves") == "1" == lim.get("aws.ec2.nitro/nitro_enclaves"),
      "the Nitro Enclaves device plugin's resource is requested")
hp = lim.get("hugepages-2Mi", "0Mi")
check(req.get("hugepages-2Mi") == hp and int(hp.rstrip("Mi")) >= int(env["MEMORY_MIB"]),
      "hugepages: requests = limits >= MEMORY_MIB", (hp, env["MEMORY_MIB"]))
labels = pod and dep["spec"]["template"]["metadata"]["labels"]
check(all(labels.get(k) == v for k, v in pdb["spec"]["selector"]["matchLabels"].items()) and
      all(labels.get(k) == v for k, v in svc["spec"]["selector"].items()),
      "the PodDisruptionBudget and the Service select the Deployment's pods")
ann = svc["metadata"]["annotations"]
check(ann.get("service.beta.kubernetes.io/aws-load-balancer-healthcheck-path") == "/ready" and
      int(ann.get("service.beta.kubernetes.io/aws-load-balancer-healthcheck-port", 0)) ==
      ready_port, "NLB health check: /ready on the readiness port")
check(svc["spec"]["ports"][0]["protocol"] == "TCP" and svc["spec"]["ports"][0]["targetPort"] ==
      "grpc", "NLB: TCP to the gRPC port (TLS passed through)")
done()
