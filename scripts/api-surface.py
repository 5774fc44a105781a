#!/usr/bin/env python3
"""Counts ringbell's public surface and how much of it carries a runnable example.

    cargo +nightly rustdoc --lib -- -Z unstable-options --output-format json
    python3 scripts/api-surface.py [target/doc/ringbell.json] [--missing]

Walks the rustdoc JSON from the crate root through public modules and re-exports (each item
once, doc(hidden) items left out) and prints the public modules, types and traits, functions
and methods (inherent and trait-declared), and constants. An item "has an example" when its
docs contain a code block that rustdoc runs or compiles (not `ignore`/`text`). `--missing`
lists the functions and types without one.
"""
import json
import re
import sys
from collections import Counter

path = next((a for a in sys.argv[1:] if not a.startswith("--")), "target/doc/ringbell.json")
doc = json.load(open(path))
index = doc["index"]


def item(i):
    return index.get(str(i))


FENCE = re.compile(r"^\s*```(.*)$", re.M)


def has_example(docs):
    for info in FENCE.findall(docs or ""):
        tags = {t.strip() for t in info.split(",") if t.strip()}
        if not tags & {"text", "ignore", "sh", "toml", "json", "c"}:
            return True
    return False


def hidden(it):
    return "hidden" in json.dumps(it.get("attrs", []))


counts, examples, missing, seen = Counter(), Counter(), [], set()


def note(kind, it, path):
    counts[kind] += 1
    if has_example(it.get("docs")):
        examples[kind] += 1
    elif kind in ("fn", "type/trait"):
        missing.append("::".join(path + [it.get("name") or "?"]))


def walk(iid, path):
    if iid in seen:
        return
    seen.add(iid)
    it = item(iid)
    if it is None or it.get("crate_id") != 0 or hidden(it):
        return
    kind = next(iter(it["inner"]))
    inner = it["inner"][kind]
    name = it.get("name")
    if kind == "module":
        counts["module"] += 1
        for child in inner["items"]:
            walk(child, path + ([name] if path or name != doc_root_name else []))
    elif kind in ("struct", "enum", "trait", "type_alias", "union"):
        note("type/trait", it, path)
        for imp in inner.get("impls", []):
            ii = item(imp)["inner"]["impl"]
            if ii.get("trait") is not None or ii.get("blanket_impl") is not None:
                continue
            for m in ii["items"]:
                mi = item(m)
                if mi["visibility"] == "public" and not hidden(mi):
                    mk = next(iter(mi["inner"]))
                    note("fn" if mk == "function" else mk, mi, path + [name])
        if kind == "trait":
            for m in inner["items"]:
                mi = item(m)
                mk = next(iter(mi["inner"]))
                note("fn" if mk == "function" else mk, mi, path + [name])
    elif kind == "function":
        note("fn", it, path)
    elif kind == "constant":
        note("constant", it, path)
    elif kind == "use":
        if inner.get("id") is not None and not inner.get("is_glob"):
            walk(inner["id"], path)
        elif inner.get("is_glob") and inner.get("id") is not None:
            target = item(inner["id"])
            if target and "module" in target["inner"]:
                for child in target["inner"]["module"]["items"]:
                    walk(child, path)
    else:
        counts[kind] += 1


doc_root_name = item(doc["root"])["name"]
walk(doc["root"], [])
for kind in ("module", "type/trait", "fn", "constant"):
    line = f"{kind:11} {counts[kind]:4}"
    if kind in ("type/trait", "fn"):
        line += f"   with an example: {examples[kind]:4} ({100 * examples[kind] / max(counts[kind], 1):.1f} %)"
    print(line)
rest = {k: v for k, v in counts.items() if k not in ("module", "type/trait", "fn", "constant")}
if rest:
    print("other      ", dict(rest))
if "--missing" in sys.argv:
    print("\nwithout an example:")
    for m in sorted(missing):
        print("  " + m)
