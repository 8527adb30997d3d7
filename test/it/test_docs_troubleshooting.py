"""test_docs_troubleshooting: every message docs/troubleshooting.md quotes in its table's
Symptom column is still printed by the code. The C sources under src/ and applets/ are read
as their string literals (adjacent literals joined, as the compiler does; escapes decoded); a
quoted message may use `…` for a value filled in at run time, and its pieces must appear in
that order within one literal. Also: the table has rows for the host's and the enclave's
steps, and every row quotes at least one message. The matcher itself is checked on a reworded
message, so the test cannot pass by matching anything.
"""
import glob
import os
import re

from tap import check, done

ROOT = os.environ.get("NS_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
DOC = os.path.join(ROOT, "docs", "troubleshooting.md")


def c_literals(text):
    """The string literals of a C file, adjacent ones joined; comments and char literals skipped."""
    out, cur, i, n = [], None, 0, len(text)
    esc = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "'": "'", "r": "\r", "0": "\0"}
    while i < n:
        c = text[i]
        if text.startswith("/*", i):
            i = text.find("*/", i + 2)
            i = n if i < 0 else i + 2
            continue
        if text.startswith("//", i):
            i = text.find("\n", i)
            i = n if i < 0 else i
            continue
        if c == "'":
            j = i + 1
            while j < n and text[j] != "'":
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            if cur is not None:
                out.append(cur)
                cur = None
            continue
        if c == '"':
            j, s = i + 1, []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    s.append(esc.get(text[j + 1], text[j + 1]))
                    j += 2
                else:
                    s.append(text[j])
                    j += 1
            cur = (cur or "") + "".join(s)
            i = j + 1
            continue
        if not c.isspace() and cur is not None:
            out.append(cur)
            cur = None
        i += 1
    if cur is not None:
        out.append(cur)
    return out


def found(msg, literals):
    pieces = [p for p in msg.split("…")]
    for lit in literals:
        pos, ok = 0, True
        for p in pieces:
            if not p:
                continue
            k = lit.find(p, pos)
            if k < 0:
                ok = False
                break
            pos = k + len(p)
        if ok:
            return True
    return False


literals = []
for f in sorted(glob.glob(os.path.join(ROOT, "src", "**", "*.c"), recursive=True) +
                glob.glob(os.path.join(ROOT, "applets", "*.c"))):
    literals += c_literals(open(f, encoding="utf-8", errors="replace").read())
check(len(literals) > 1000, "the sources' string literals were read (%d)" % len(literals))
check(found("KMS denied Decrypt (AccessDeniedException: …): check the key policy grants", literals),
      "the matcher finds a message split over two literals with a %s in it")
check(not found("KMS refused Decrypt (AccessDeniedException: …)", literals),
      "the matcher does not find a reworded message")
check(not found("KMS denied Decrypt … (AccessDeniedException", literals),
      "the matcher keeps the pieces' order")

rows = []
for line in open(DOC, encoding="utf-8"):
    if not line.startswith("|") or line.startswith("|---") or line.startswith("| Step "):
        continue
    cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
    if len(cells) != 4:
        check(False, "table row has 4 cells: %s" % line.strip()[:80])
        continue
    rows.append(cells)
check(len(rows) >= 20, "the table has %d rows" % len(rows))
steps = {r[0].split(" ")[0] for r in rows}
for s in ("check", "fetch-creds", "s3-get", "nitro-cli", "push", "kms-decrypt", "age-decrypt",
          "preflight", "supervise"):
    check(s in steps, "the table covers step %s" % s)
for step, symptom, cause, fix in rows:
    quoted = re.findall(r"`([^`]+)`", symptom)
    check(len(quoted) >= 1, "row '%s' quotes a message" % symptom[:60])
    for q in quoted:
        q = q.replace("\\|", "|")
        check(found(q, literals), "[%s] printed by the code: %s" % (step, q[:90]))
done()
