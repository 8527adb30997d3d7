"""test_layout: src/README.md, the module map, stays true: every module of src/ is listed in the
section of the folder it lives in (and nothing listed is missing), and no module includes one of
a group listed after its own (the one documented exception: tls implements h2loop's
transport interface)."""
import os
import re
import sys

from tap import check, done

ROOT = os.environ.get("NS_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
SRC = os.path.join(ROOT, "src")
ALLOWED_UP = {("tls", "h2loop")}

text = open(os.path.join(SRC, "README.md")).read()
order = re.findall(r"^\| (\w+) \| ", text.split("## ")[0], re.M)
order = [g for g in order if g != "group"]
check(order == sorted(set(order), key=order.index) and len(order) >= 6,
      "the map's group table lists each group once", order)

listed = {}
for sec in text.split("\n## ")[1:]:
    group = sec.split("\n", 1)[0].strip()
    for row in re.findall(r"^\| ([\w ,()+.]+?) \| ", sec, re.M):
        if row == "module":
            continue
        for name in re.split(r"[ ,]+", re.sub(r"\(.*?\)", "", row)):
            if name:
                listed[name] = group

actual = {}
for group in sorted(os.listdir(SRC)):
    d = os.path.join(SRC, group)
    if not os.path.isdir(d):
        continue
    for f in sorted(os.listdir(d)):
        if f.endswith((".c", ".h")):
            actual[f.rsplit(".", 1)[0]] = group

check(set(actual.values()) == set(order), "every folder of src/ is a group of the map",
      (sorted(set(actual.values())), order))
for mod, group in sorted(actual.items()):
    check(listed.get(mod) == group, "src/%s/%s is listed under '%s' in src/README.md"
          % (group, mod, group), listed.get(mod))
for mod, group in sorted(listed.items()):
    check(actual.get(mod) == group, "the map's %s exists in src/%s/" % (mod, group))
check(sorted(f for f in os.listdir(SRC) if f.endswith(".c")) == ["main.c"],
      "src/ itself holds only main.c (modules live in their group's folder)")

rank = {g: i for i, g in enumerate(order)}
bad = []
for mod, group in actual.items():
    for ext in (".c", ".h"):
        p = os.path.join(SRC, group, mod + ext)
        if not os.path.exists(p):
            continue
        for inc in re.findall(r'#include "(\w+)\.(?:h|def)"', open(p).read()):
            g2 = actual.get(inc)
            if g2 and rank[g2] > rank[group] and (mod, inc) not in ALLOWED_UP:
                bad.append("%s/%s%s includes %s/%s.h" % (group, mod, ext, g2, inc))
check(not bad, "no module includes one of a later group", bad)
done()
