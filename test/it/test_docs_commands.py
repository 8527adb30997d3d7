"""test_docs_commands: the commands of the operator pages (docs/deploy-aws.md, operations.md,
troubleshooting.md) are real.

Every `sh` code block is split into commands (line continuations joined; `|`, `&&`, `;`
separate commands; `$(...)` is shell plumbing; `sudo`, `env` and VAR=value prefixes dropped):
- `nsign APPLET ...`: the applet exists and every --option (and an `eif` sub-command) is in
  `nsign APPLET --help`. Options another branch adds (PENDING) are reported as skipped while
  they are missing, never as passing. The offline ones (`eif describe`, `eif pcr16`,
  `kms-policy`) are run, in the order the page gives them, in a scratch directory with the
  page's variables set and EIFs built here (a dummy kernel, as test_eif.sh does); what they
  print or write must parse as JSON.
- `make TARGET`: the Makefile has the target.
- `aws SERVICE OPERATION ...`: the operation and every option exist in AWS's API model
  (botocore, which the AWS CLI is built on; plus the CLI's global options), one call per
  block, and the block is followed by "Expected output" and an output block: JSON whose
  members are the operation's output members, or text ("(none)" for operations without
  output, or --output text).
- anything else must be a known tool (EXTERNAL); those are listed as not run here.
Inline `nsign ...` and `aws ...` spans in the pages' prose and tables are checked the same way
for existence (they have no expected output).
"""
import json
import os
import re
import shlex
import subprocess
import tempfile

import botocore.session
from botocore import xform_name
from tap import NSIGN, check, done, skip

ROOT = os.environ.get("NS_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
PAGES = ["docs/deploy-aws.md", "docs/operations.md", "docs/troubleshooting.md"]
PENDING = {("run-enclave", "--preflight"): "the preflight branch adds run-enclave --preflight",
           ("sign", "--pcr"): "the sign branch adds sign --pcr N=HEX"}
EXTERNAL = {"age", "age-keygen", "shred", "openssl", "sha256sum", "base64", "grep", "ls", "lsmod",
            "nitro-cli", "systemctl", "journalctl", "curl", "usermod", "dnf", "install", "cat",
            "xargs", "ss"}
CLI_GLOBAL = {"--query", "--output", "--region", "--profile", "--endpoint-url", "--no-cli-pager",
              "--cli-binary-format", "--debug", "--no-paginate"}
SERVICE = {"s3api": "s3"}
RUNNABLE = {("eif", "describe"), ("eif", "pcr16"), ("kms-policy", None)}
SESSION = botocore.session.get_session()


def blocks(text):
    """(info, body, text between this block and the next, next block's info and body)."""
    found = [(m.group(1).strip(), m.group(2), m.start(), m.end())
             for m in re.finditer(r"^```([^\n]*)\n(.*?)^```\s*$", text, re.S | re.M)]
    out = []
    for i, (info, body, _, end) in enumerate(found):
        nxt = found[i + 1] if i + 1 < len(found) else None
        between = text[end:nxt[2]] if nxt else text[end:]
        out.append((info, body, between, nxt[0] if nxt else None, nxt[1] if nxt else None))
    return out


def strip_subst(s):
    """Replaces each $(...) (balanced) with a placeholder word."""
    out, i = [], 0
    while i < len(s):
        if s.startswith("$(", i):
            depth, j = 1, i + 2
            while j < len(s) and depth:
                depth += {"(": 1, ")": -1}.get(s[j], 0)
                j += 1
            out.append("SUBST")
            i = j
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def commands(body):
    body = re.sub(r"\\\n\s*", " ", body)
    for line in body.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        lex = shlex.shlex(strip_subst(line), posix=True, punctuation_chars="|&;<>")
        lex.whitespace_split = True
        cur = []
        toks = list(lex)
        i = 0
        while i < len(toks):
            t = toks[i]
            if t in ("|", "||", "&&", ";", "&"):
                if cur:
                    yield cur
                cur = []
            elif t in (">", ">>", "<", "2>"):
                i += 1  # the redirection's target
            else:
                cur.append(t)
            i += 1
        if cur:
            yield cur


def strip_prefix(argv):
    while argv and (argv[0] in ("sudo", "env", "export", "SUBST") or
                    re.match(r"^[A-Z_][A-Z0-9_]*=", argv[0])):
        argv = argv[1:]
    return argv


_help = {}


def help_of(applet):
    if applet not in _help:
        p = subprocess.run([NSIGN, applet, "--help"], capture_output=True, timeout=30)
        _help[applet] = (p.returncode, p.stdout.decode())
    return _help[applet]


def check_nsign(argv, where):
    applet = argv[1] if len(argv) > 1 else ""
    rc, text = help_of(applet)
    if not check(rc == 0, "%s: applet %s exists (--help exits 0)" % (where, applet)):
        return
    if applet == "eif" and len(argv) > 2:
        check(re.search(r"nsign eif %s\b" % re.escape(argv[2]), text) is not None,
              "%s: eif sub-command %s is in --help" % (where, argv[2]))
    for a in argv[2:]:
        if not a.startswith("--") or a == "--help":
            continue
        opt = a.split("=", 1)[0]
        present = re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(opt), text) is not None
        if not present and (applet, opt) in PENDING:
            skip("%s: nsign %s %s is in --help" % (where, applet, opt), PENDING[(applet, opt)])
        else:
            check(present, "%s: nsign %s %s is in --help" % (where, applet, opt))


def makefile_targets():
    t = set()
    for line in open(os.path.join(ROOT, "Makefile")):
        m = re.match(r"^([A-Za-z0-9_. -]+):(?!=)", line)
        if m:
            t.update(m.group(1).split())
    return t


def aws_op(argv, where):
    """The botocore operation model of `aws SERVICE OP ...` after checking its options."""
    if len(argv) < 3:
        check(False, "%s: aws SERVICE OPERATION" % where)
        return None
    svc, op = SERVICE.get(argv[1], argv[1]), argv[2]
    try:
        model = SESSION.get_service_model(svc)
    except Exception as e:  # an unknown service
        check(False, "%s: aws service %s exists" % (where, argv[1]), e)
        return None
    names = {xform_name(n, "-"): n for n in model.operation_names}
    if not check(op in names, "%s: aws %s %s is an operation" % (where, argv[1], op)):
        return None
    om = model.operation_model(names[op])
    members = {"--" + xform_name(m, "-") for m in (om.input_shape.members if om.input_shape else {})}
    for a in argv[3:]:
        if a.startswith("--"):
            opt = a.split("=", 1)[0]
            check(opt in members or opt in CLI_GLOBAL,
                  "%s: aws %s %s %s is an option of the API" % (where, argv[1], op, opt))
    return om


def check_aws_output(om, argv, between, info, body, where):
    check("Expected output" in between and info in ("json", "text"),
          "%s: aws %s %s is followed by its expected output" % (where, argv[1], argv[2]))
    if info == "json":
        try:
            doc = json.loads(body)
        except ValueError as e:
            check(False, "%s: the expected output is JSON" % where, e)
            return
        outs = set(om.output_shape.members) if om.output_shape else set()
        check(set(doc) <= outs, "%s: its members are %s's output (%s)" % (
            where, om.name, ", ".join(sorted(doc))), "model: %s" % sorted(outs))
    elif info == "text":
        text_ok = "--output" in argv or om.output_shape is None or not om.output_shape.members
        check(text_ok, "%s: a text output for an operation without output or with --output text"
              % where)


# --- a scratch directory with what the pages' offline commands read ---
T = tempfile.mkdtemp(prefix="nsign-docs-")


def nsign(*args):
    p = subprocess.run([NSIGN] + list(args), capture_output=True, timeout=60, cwd=T)
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout.decode()


def build_eif(out, payload):
    os.makedirs(os.path.join(T, "rd0"), exist_ok=True)
    os.makedirs(os.path.join(T, "rd1-" + payload), exist_ok=True)
    open(os.path.join(T, "rd0", "init"), "w").write("boot")
    open(os.path.join(T, "rd1-" + payload, "app"), "w").write(payload)
    open(os.path.join(T, "kernel"), "wb").write(b"\x4d\x5a" + b"k" * 20000)
    nsign("eif", "cpio", "rd0", "-o", "rd0.cpio")
    nsign("eif", "cpio", "rd1-" + payload, "-o", "rd1-%s.cpio" % payload)
    os.makedirs(os.path.dirname(os.path.join(T, out)), exist_ok=True)
    nsign("eif", "build", "--kernel", "kernel", "--cmdline", "console=ttyS0", "--ramdisk",
          "rd0.cpio", "--ramdisk", "rd1-%s.cpio" % payload, "-o", out)


build_eif("build/eif/nsign.eif", "one")
build_eif("opt/nsign.eif", "one")
build_eif("opt/nsign-new.eif", "two")
for f, data in (("age-private.key.enc", b"\x01\x02\x02\x00kms"), ("service_key_shares.json.age",
                                                                   b"age-encryption.org/v1\n")):
    open(os.path.join(T, f), "wb").write(data)
pcr16 = json.loads(nsign("eif", "pcr16", "age-private.key.enc", "service_key_shares.json.age"))["PCR16"]
ENV = dict(os.environ, AWS_REGION="eu-west-1", ACCOUNT="111122223333",
           ROLE_ARN="arn:aws:iam::111122223333:role/nsign-enclave-host",
           ADMIN_ARN="arn:aws:iam::111122223333:role/KeyAdmins", BUCKET="my-nsign-inputs",
           KEY_ARN="arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
           PCR16=pcr16, OLD_PCR16=pcr16, NEW_PCR16="ab" * 48)


def run_offline(argv, where):
    args = [a.replace("/opt/nsign/", "opt/") for a in argv[1:]]
    args = [re.sub(r"\$\{?(\w+)\}?", lambda m: ENV.get(m.group(1), m.group(0)), a) for a in args]
    p = subprocess.run([NSIGN] + args, capture_output=True, timeout=60, cwd=T, env=ENV)
    out = p.stdout.decode()
    if "-o" in args:
        path = os.path.join(T, args[args.index("-o") + 1])
        out = open(path).read() if os.path.exists(path) else ""
    try:
        json.loads(out)
        parsed = True
    except ValueError:
        parsed = False
    check(p.returncode == 0 and parsed, "%s: ran `nsign %s`: exit 0, JSON output" % (
        where, " ".join(argv[1:4])), p.stderr.decode()[-500:])


n_nsign = n_run = n_make = n_aws = 0
not_run = set()
targets = makefile_targets()
for page in PAGES:
    text = open(os.path.join(ROOT, page), encoding="utf-8").read()
    for bi, (info, body, between, ninfo, nbody) in enumerate(blocks(text)):
        if info != "sh":
            continue
        where = "%s block %d" % (os.path.basename(page), bi + 1)
        aws_in_block = 0
        for argv in commands(body):
            argv = strip_prefix(argv)
            if not argv or argv[0] == "SUBST":
                continue
            tool = argv[0]
            if tool == "nsign":
                n_nsign += 1
                check_nsign(argv, where)
                sub = argv[2] if argv[1] == "eif" and len(argv) > 2 else None
                if (argv[1], sub) in RUNNABLE:
                    n_run += 1
                    run_offline(argv, where)
            elif tool == "make":
                n_make += 1
                for t in argv[1:]:
                    if "=" not in t and not t.startswith("-"):
                        check(t in targets, "%s: make %s is a Makefile target" % (where, t))
            elif tool == "aws":
                n_aws += 1
                aws_in_block += 1
                om = aws_op(argv, where)
                if om is not None:
                    check_aws_output(om, argv, between, ninfo, nbody or "", where)
            else:
                check(tool in EXTERNAL, "%s: `%s` is a known tool (EXTERNAL)" % (where, tool))
                not_run.add(tool)
        check(aws_in_block <= 1, "%s: at most one aws call per block (its output follows)" % where)
    # inline spans in prose and tables
    for span in re.findall(r"`((?:sudo )?(?:nsign|aws) [^`]+)`", text):
        argv = strip_prefix(list(commands(span.replace("\\|", "|")))[0])
        where = "%s inline" % os.path.basename(page)
        if argv[0] == "nsign" and len(argv) > 1 and not argv[1].endswith(":"):
            check_nsign(argv, where)
        elif argv[0] == "aws" and len(argv) > 2 and re.match(r"^[a-z0-9-]+$", argv[2]):
            aws_op(argv, where)

check(n_nsign >= 12 and n_run >= 6 and n_make >= 1 and n_aws >= 12,
      "the pages hold commands: %d nsign (%d run here), %d make, %d aws" % (n_nsign, n_run, n_make, n_aws))
print("# not run here (other tools): %s" % ", ".join(sorted(not_run)))
done()
