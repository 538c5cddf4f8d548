#!/usr/bin/env python3
"""Extract the wire shapes Berth validates against from botocore's service models.

Documentation is dropped; what is kept is the protocol facts: operations, their input
and output shapes and errors, and for each shape its type, members, required members,
enums and length/range limits. Output: crates/berth-wire/models/<service>.json.gz.
Usage: tools/gen-models.py ecs ec2 ...
"""
import glob, gzip, json, os, sys
import botocore

KEEP = ("type", "required", "enum", "min", "max", "flattened", "timestampFormat", "error")
MEMBER_KEEP = ("shape", "location", "locationName", "queryName", "flattened")

def extract(service):
    base = os.path.join(os.path.dirname(botocore.__file__), "data", service)
    path = sorted(glob.glob(os.path.join(base, "*", "service-2.json*")))[-1]
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        model = json.load(f)
    ops = {}
    for name, op in model["operations"].items():
        ops[name] = {k: v for k, v in {
            "input": op.get("input", {}).get("shape"),
            "output": op.get("output", {}).get("shape"),
            "errors": [e["shape"] for e in op.get("errors", [])],
            "http": op.get("http"),
        }.items() if v}
    shapes = {}
    for name, s in model["shapes"].items():
        out = {k: s[k] for k in KEEP if k in s}
        if "members" in s:
            out["members"] = {m: {k: v[k] for k in MEMBER_KEEP if k in v} for m, v in s["members"].items()}
        for k in ("member", "key", "value"):
            if k in s:
                out[k] = {kk: s[k][kk] for kk in MEMBER_KEEP if kk in s[k]}
        shapes[name] = out
    meta = {k: model["metadata"][k] for k in ("protocol", "targetPrefix", "jsonVersion", "apiVersion", "endpointPrefix", "signingName", "xmlNamespace") if k in model["metadata"]}
    return {"metadata": meta, "operations": ops, "shapes": shapes}

if __name__ == "__main__":
    out_dir = os.path.join(os.path.dirname(__file__), "..", "crates", "berth-wire", "models")
    for svc in sys.argv[1:]:
        data = json.dumps(extract(svc), separators=(",", ":"), sort_keys=True).encode()
        with gzip.GzipFile(os.path.join(out_dir, svc + ".json.gz"), "wb", mtime=0) as f:
            f.write(data)
        print(svc, len(data), "bytes", f"botocore {botocore.__version__}")
