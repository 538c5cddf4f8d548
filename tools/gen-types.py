#!/usr/bin/env python3
"""Generate Rust types for a service's operations from the model Berth ships.

Reads crates/berth-wire/models/SERVICE.json.gz (what validation reads too, so the types
and the validator agree on one model) and writes, for the named operations (the ones the
service implements, not the whole model) and every shape their inputs and outputs reach:

  structures  structs with snake_case fields renamed to the model's member names;
              required members plain, optional ones Option<T>. Input structures derive
              Deserialize with deny_unknown_fields (the validator lets unknown members of
              JSON services through; the type refuses them, so a member Berth does not
              know is answered 400, not dropped). Output structures derive Serialize and
              Clone, skipping None; Default only when no member is required, so a handler
              cannot leave a required one out.
  unions      enums of one-member variants (serde's external tagging is the wire form)
  enums       Rust enums with as_str/from_wire and berth_wire::wire_enum! (closed: the
              validator refuses values outside the model's set, and outputs are ours)
  lists, maps Vec<T>, BTreeMap<String, T> (serde_json's own map order: sorted)
  scalars     String, i32, i64, f32, f64, bool; timestamps berth_wire::typed::Timestamp
              (epoch seconds, the document's form); blobs String (base64, as the document
              holds them); documents serde_json::Value; a structure that holds itself
              without a list or map between is boxed
  --read-outputs  output structures also derive Deserialize (without deny_unknown_fields,
              members the model lacks are dropped as the renderers drop them): for a
              service whose stored records are the model's output shapes (ELBv2), read
              back into the output types as they are
  operations  `op::NAME` markers implementing berth_wire::typed::Operation, with decode
              and encode written out so serde's code is instantiated here, once; a
              service's `call` dispatches through them (berth_wire::dispatch!)

Usage:
  tools/gen-types.py SERVICE [--read-outputs] OP... -o crates/berth-types/src/SERVICE.rs
  tools/gen-types.py SERVICE OP...               print to stdout
The output's first line records the command that made it; rerun it after a model update
or to add an operation. With -o the file is passed through rustfmt. A new service's
module is added to crates/berth-types/src/lib.rs. See ARCHITECTURE.md, "Typed operations".
"""
import gzip, json, os, re, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEYWORDS = set("""as async await break const continue crate dyn else enum extern false fn
for if impl in let loop match mod move mut pub ref return self static struct super trait
true type unsafe use where while abstract become box do final macro override priv try
typeof unsized virtual yield gen""".split())
# Names the generated file uses itself; a shape with one of these names gets a suffix.
TAKEN = {"Option", "Vec", "String", "BTreeMap", "Box", "Value", "Timestamp", "Empty",
         "Deserialize", "Serialize", "Result", "Some", "None", "Ok", "Err", "op", "Self"}
SCALARS = {"string": "String", "integer": "i32", "long": "i64", "float": "f32",
           "double": "f64", "boolean": "bool", "blob": "String", "timestamp": "Timestamp"}


def snake(name):
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s)
    s = re.sub(r"[^A-Za-z0-9_]", "_", s).lower()
    if s[0].isdigit():
        s = "n" + s
    if s in ("self", "super", "crate", "_"):
        return s + "_"
    return "r#" + s if s in KEYWORDS else s


def variant(value):
    parts = [p for p in re.split(r"[^A-Za-z0-9]+", value) if p]
    out = "".join(p[0].upper() + (p[1:].lower() if p.isupper() else p[1:]) for p in parts)
    if not out or out[0].isdigit():
        out = "V" + out
    return out


class Gen:
    def __init__(self, model):
        self.shapes = model["shapes"]
        self.names = {}

    def rust_name(self, shape):
        if shape not in self.names:
            base = re.sub(r"[^A-Za-z0-9_]", "_", shape)
            base = base[0].upper() + base[1:]
            name = base + "Shape" if base in TAKEN else base
            # Shapes differing only in their first letter's case would meet here.
            while name in self.names.values():
                name += "_"
            self.names[shape] = name
        return self.names[shape]

    def kind(self, name):
        s = self.shapes[name]
        if s["type"] == "structure" and s.get("document"):
            return "document"
        if s["type"] == "structure" and s.get("union"):
            return "union"
        if s["type"] == "string" and s.get("enum"):
            return "enum"
        return s["type"]

    def children(self, name):
        s = self.shapes[name]
        kids = [m["shape"] for m in s.get("members", {}).values()]
        kids += [s[k]["shape"] for k in ("member", "key", "value") if k in s]
        return kids

    def reach(self, roots):
        seen, todo = set(), list(roots)
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo.extend(self.children(n))
        return seen

    def direct(self, name):
        """Structures and unions a structure holds without a Vec or map between."""
        s = self.shapes[name]
        return [m["shape"] for m in s.get("members", {}).values()
                if self.kind(m["shape"]) in ("structure", "union")]

    def cyclic(self, frm, to):
        """Would holding `to` inside `frm` make an infinitely sized type?"""
        seen, todo = set(), [to]
        while todo:
            n = todo.pop()
            if n == frm:
                return True
            if n not in seen:
                seen.add(n)
                todo.extend(self.direct(n))
        return False

    def ty(self, name):
        k = self.kind(name)
        s = self.shapes[name]
        if k in ("structure", "union", "enum"):
            return self.rust_name(name)
        if k == "document":
            return "serde_json::Value"
        if k == "list":
            return f"Vec<{self.ty(s['member']['shape'])}>"
        if k == "map":
            return f"BTreeMap<String, {self.ty(s['value']['shape'])}>"
        return SCALARS[k]

    def struct(self, name, de, ser, read_back=False):
        s = self.shapes[name]
        required = set(s.get("required", []))
        members = {m: v for m, v in s.get("members", {}).items()
                   if not v.get("streaming") and not v.get("eventpayload")}
        # Inputs are consumed by their handler, so only outputs need Clone.
        derives = ["Debug"] + (["Clone"] if ser else [])
        if ser and not required:
            derives.append("Default")
        if de or read_back:
            derives.append("Deserialize")
        if ser:
            derives.append("Serialize")
        out = [f"#[derive({', '.join(derives)})]"]
        if de:
            out.append("#[serde(deny_unknown_fields)]")
        out.append(f"pub struct {self.rust_name(name)} {{")
        used = set()
        for m, spec in members.items():
            field = snake(m)
            while field in used:
                field += "_"
            used.add(field)
            t = self.ty(spec["shape"])
            if self.kind(spec["shape"]) in ("structure", "union") and self.cyclic(name, spec["shape"]):
                t = f"Box<{t}>"
            attrs = []
            if field.removeprefix("r#") != m:
                attrs.append(f'rename = "{m}"')
            if m not in required:
                t = f"Option<{t}>"
                if ser:
                    attrs.append('skip_serializing_if = "Option::is_none"')
            if attrs:
                out.append(f"    #[serde({', '.join(attrs)})]")
            out.append(f"    pub {field}: {t},")
        out.append("}")
        return out

    def union(self, name, de, ser, read_back=False):
        s = self.shapes[name]
        derives = ["Debug"] + (["Clone", "Serialize"] if ser else []) + (["Deserialize"] if de or read_back else [])
        out = [f"#[derive({', '.join(derives)})]", f"pub enum {self.rust_name(name)} {{"]
        for m, spec in s["members"].items():
            t = self.ty(spec["shape"])
            if self.kind(spec["shape"]) in ("structure", "union") and self.cyclic(name, spec["shape"]):
                t = f"Box<{t}>"
            out.append(f'    #[serde(rename = "{m}")]')
            out.append(f"    {variant(m)}({t}),")
        out.append("}")
        return out

    def enum(self, name):
        values = self.shapes[name]["enum"]
        rn = self.rust_name(name)
        vs, used = [], set()
        for v in values:
            n = variant(v)
            while n in used:
                n += "_"
            used.add(n)
            vs.append((n, v))
        out = ["#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]", f"pub enum {rn} {{"]
        out += [f"    {n}," for n, _ in vs]
        out += ["}", "", f"impl {rn} {{",
                f"    pub const ALL: [{rn}; {len(vs)}] = [{', '.join(f'{rn}::{n}' for n, _ in vs)}];",
                "    pub fn as_str(self) -> &'static str {", "        match self {"]
        out += [f'            {rn}::{n} => {json.dumps(v)},' for n, v in vs]
        out += ["        }", "    }",
                "    pub fn from_wire(s: &str) -> Option<Self> {",
                "        Self::ALL.into_iter().find(|v| v.as_str() == s)", "    }", "}", "",
                f"berth_wire::wire_enum!({rn});"]
        return out


def main(argv):
    out_path = None
    read_back = "--read-outputs" in argv
    argv = [a for a in argv if a != "--read-outputs"]
    if "-o" in argv:
        i = argv.index("-o")
        out_path = argv[i + 1]
        argv = argv[:i] + argv[i + 2:]
    if len(argv) < 2:
        sys.exit(__doc__)
    service, ops = argv[0], argv[1:]
    with gzip.open(os.path.join(ROOT, "crates/berth-wire/models", f"{service}.json.gz"), "rt") as f:
        model = json.load(f)
    g = Gen(model)
    for op in ops:
        if op not in model["operations"]:
            sys.exit(f"{service} has no operation {op}")
    inputs = [model["operations"][o].get("input") for o in ops]
    outputs = [model["operations"][o].get("output") for o in ops]
    de = g.reach([s for s in inputs if s])
    ser = g.reach([s for s in outputs if s])

    cmd = "tools/gen-types.py " + " ".join([service] + (["--read-outputs"] if read_back else []) + ops) + (f" -o {out_path}" if out_path else "")
    lines = [f"//! @generated by `{cmd}`",
             f"//! from crates/berth-wire/models/{service}.json.gz. Do not edit: rerun it.",
             "#![allow(clippy::large_enum_variant, clippy::enum_variant_names)]",
             "",
             "use berth_wire::typed::Timestamp;",
             "use serde::{Deserialize, Serialize};",
             "use std::collections::BTreeMap;",
             ""]
    used = {"Timestamp": False, "BTreeMap": False}
    for name in sorted(de | ser):  # names first, in a fixed order: output is stable
        g.rust_name(name)
    for name in sorted(de | ser, key=g.rust_name):
        k = g.kind(name)
        if k == "structure":
            block = g.struct(name, name in de, name in ser, read_back)
        elif k == "union":
            block = g.union(name, name in de, name in ser, read_back)
        elif k == "enum":
            block = g.enum(name)
        else:
            continue
        text = "\n".join(block)
        for u in used:
            used[u] |= re.search(rf"\b{u}\b", text) is not None
        lines += block + [""]
    if not used["Timestamp"]:
        lines.remove("use berth_wire::typed::Timestamp;")
    if not used["BTreeMap"]:
        lines.remove("use std::collections::BTreeMap;")

    lines += ["/// The operations, each with its input and output type.", "pub mod op {",
              "    use berth_wire::typed::{self, Operation};", "    use serde_json::Value;", ""]
    for o, i, r in zip(ops, inputs, outputs):
        lines += [f"    pub struct {o};",
                  f"    impl Operation for {o} {{",
                  f'        const NAME: &\'static str = "{o}";',
                  f"        type Input = {'super::' + g.rust_name(i) if i else 'berth_wire::typed::Empty'};",
                  f"        type Output = {'super::' + g.rust_name(r) if r else '()'};",
                  "        fn decode(input: Value) -> Result<Self::Input, serde_json::Error> {",
                  "            typed::decode_input(input)",
                  "        }",
                  "        fn encode(output: &Self::Output) -> Value {",
                  "            typed::encode(output)",
                  "        }",
                  "    }", ""]
    lines += ["}", ""]
    text = "\n".join(lines)
    if out_path:
        with open(out_path, "w") as f:
            f.write(text)
        subprocess.run(["rustfmt", "--edition", "2021", out_path], check=True)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main(sys.argv[1:])
