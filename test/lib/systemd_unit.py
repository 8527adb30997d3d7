#!/usr/bin/python3
"""systemd_unit: read a unit file and an environment file the way systemd does, for tests that
start a program as its unit would (no systemd needed).

  systemd_unit.py envfile FILE          the assignments of an EnvironmentFile= (systemd.exec(5)):
                                        KEY=VALUE lines, '#'/';' comment lines and lines without
                                        '=' ignored, leading/trailing whitespace dropped, values
                                        unquoted (backslash escapes, a trailing backslash joins the
                                        next line), 'single' (verbatim) or "double" (\\ \\" \\$ \\`
                                        escapes) quoted; printed NUL-separated as KEY=VALUE
  systemd_unit.py get UNIT SECTION KEY  every value of KEY in [SECTION], one per line
  systemd_unit.py exec UNIT KEY         the command of Exec line KEY (ExecStart...), its prefix
                                        ('-', '@', ':', '+', '!') removed, split with systemd's
                                        quoting and "$$" made "$" (an unescaped $ is refused: the
                                        tests' units do not use systemd's variable expansion);
                                        printed NUL-separated
Exit 1 with a message naming the line for anything this reader does not understand.
"""
import re
import sys


def die(msg):
    print("systemd_unit: " + msg, file=sys.stderr)
    sys.exit(1)


def envfile(path):
    text = open(path, encoding="utf-8").read()
    out, i, n, line = [], 0, len(text), 1
    while i < n:
        # one assignment (or an ignored line) starting at i
        j = text.find("\n", i)
        raw = text[i:] if j < 0 else text[i:j]
        stripped = raw.lstrip(" \t\r")
        if not stripped or stripped[0] in "#;" or "=" not in stripped:
            i = n if j < 0 else j + 1
            line += 1
            continue
        key, _, _ = stripped.partition("=")
        key = key.rstrip(" \t\r")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            die("%s:%d: %r is not a variable name" % (path, line, key))
        k = i + raw.index("=") + 1
        while k < n and text[k] in " \t\r":
            k += 1
        val, start_line = [], line
        if k < n and text[k] == "'":
            e = text.find("'", k + 1)
            if e < 0:
                die("%s:%d: unterminated single quote" % (path, start_line))
            val.append(text[k + 1:e])
            line += text.count("\n", k, e)
            k = e + 1
            while k < n and text[k] != "\n":
                if text[k] not in " \t\r":
                    die("%s:%d: text after the closing quote" % (path, line))
                k += 1
        elif k < n and text[k] == '"':
            k += 1
            while True:
                if k >= n:
                    die("%s:%d: unterminated double quote" % (path, start_line))
                c = text[k]
                if c == '"':
                    k += 1
                    break
                if c == "\\" and k + 1 < n and text[k + 1] in '\\"$`':
                    val.append(text[k + 1])
                    k += 2
                    continue
                if c == "\\" and k + 1 < n and text[k + 1] == "\n":
                    k += 2
                    line += 1
                    continue
                if c == "\n":
                    line += 1
                val.append(c)
                k += 1
            while k < n and text[k] != "\n":
                if text[k] not in " \t\r":
                    die("%s:%d: text after the closing quote" % (path, line))
                k += 1
        else:
            while k < n and text[k] != "\n":
                c = text[k]
                if c == "\\" and k + 1 < n:
                    if text[k + 1] == "\n":
                        line += 1
                    else:
                        val.append(text[k + 1])
                    k += 2
                    continue
                val.append(c)
                k += 1
            v = "".join(val).rstrip(" \t\r")
            val = [v]
        out.append((key, "".join(val)))
        i = k + 1
        line += 1
    return out


def sections(path):
    """[(section, key, value, lineno)] with continuation lines joined, comments dropped."""
    out, sec, pending, pline = [], None, "", 0
    for no, raw in enumerate(open(path, encoding="utf-8"), 1):
        s = raw.rstrip("\n")
        if not pending:
            st = s.strip()
            if not st or st[0] in "#;":
                continue
            if st.startswith("[") and st.endswith("]"):
                sec = st[1:-1]
                continue
            pline = no
        if s.endswith("\\"):
            pending += s[:-1] + " "
            continue
        s = pending + s
        pending = ""
        k, eq, v = s.partition("=")
        if not eq or sec is None:
            die("%s:%d: not KEY=VALUE in a section" % (path, pline))
        out.append((sec, k.strip(), v.strip(), pline))
    return out


def split_exec(v, where):
    v = v.lstrip("-@:+!")
    args, i, n = [], 0, len(v)
    while i < n:
        while i < n and v[i] in " \t":
            i += 1
        if i >= n:
            break
        cur = []
        if v[i] in "'\"":
            q, i = v[i], i + 1
            e = v.find(q, i)
            if e < 0:
                die("%s: unterminated quote" % where)
            cur.append(v[i:e])
            i = e + 1
            if i < n and v[i] not in " \t":
                die("%s: text after a closing quote" % where)
        else:
            while i < n and v[i] not in " \t":
                if v[i] == "\\" and i + 1 < n:
                    cur.append(v[i + 1])
                    i += 2
                    continue
                cur.append(v[i])
                i += 1
        word = "".join(cur)
        if re.search(r"(?<!\$)\$(?!\$)", word.replace("$$", "")):
            die("%s: an unescaped $ (systemd's variable expansion) in %r" % (where, word))
        if word == ";":
            die("%s: several commands on one line" % where)
        args.append(word.replace("$$", "$"))
    return args


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "envfile":
        sys.stdout.write("".join("%s=%s\0" % kv for kv in envfile(sys.argv[2])))
    elif len(sys.argv) == 5 and sys.argv[1] == "get":
        for sec, k, v, _ in sections(sys.argv[2]):
            if sec == sys.argv[3] and k == sys.argv[4]:
                print(v)
    elif len(sys.argv) == 4 and sys.argv[1] == "exec":
        found = [(v, no) for sec, k, v, no in sections(sys.argv[2])
                 if sec == "Service" and k == sys.argv[3]]
        if len(found) != 1:
            die("%s: %d %s= lines (want exactly one)" % (sys.argv[2], len(found), sys.argv[3]))
        v, no = found[0]
        sys.stdout.write("".join(a + "\0" for a in split_exec(v, "%s:%d" % (sys.argv[2], no))))
    else:
        die("usage: systemd_unit.py envfile FILE | get UNIT SECTION KEY | exec UNIT KEY")


if __name__ == "__main__":
    main()
