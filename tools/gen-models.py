#!/usr/bin/env python3
"""Extract the wire shapes Berth validates against from botocore's service models.

Documentation is dropped; what is kept is the protocol facts: operations, their input
and output shapes, HTTP bindings and errors, and for each shape its type, members,
required members, enums, length/range limits and the bindings of its members (where a
REST protocol puts them: path, query string, header, payload).
Output: crates/berth-wire/models/<service>.json.gz.

Usage:
  tools/gen-models.py ecs ec2 ...          regenerate these services' models
  tools/gen-models.py --all                regenerate every model Berth ships, and
                                           protocols.json: every AWS service's protocol
                                           by signing name, so a service Berth has no
                                           model of is answered in its client's protocol
  tools/gen-models.py --doc ecs CreateGateway
                                           print an operation's documentation and its
                                           input members' (to learn a new operation)
  tools/gen-models.py --doc ecs            list the service's operations

Use the newest botocore from PyPI (`pip install -U botocore`); the version used is
printed, and recorded in crates/berth-wire/models/VERSION.
"""
import glob, gzip, html, json, os, re, sys, textwrap
import botocore

# The services Berth serves, or that open issues add.
SERVICES = (
    "ecs ec2 ecr elbv2 logs s3 "
    "sqs sns events scheduler cloudwatch application-autoscaling iam sts "
    "secretsmanager ssm servicediscovery acm"
).split()

SHAPE_KEEP = ("type", "required", "enum", "min", "max", "flattened", "timestampFormat",
              "error", "exception", "fault", "payload", "union", "document", "locationName",
              "eventstream", "event")
MEMBER_KEEP = ("shape", "location", "locationName", "queryName", "flattened",
               "timestampFormat", "idempotencyToken", "jsonvalue", "hostLabel",
               "streaming", "eventpayload")
META_KEEP = ("protocol", "protocols", "awsQueryCompatible", "targetPrefix", "jsonVersion",
             "apiVersion", "endpointPrefix", "signingName", "xmlNamespace", "serviceId")


def load(service):
    base = os.path.join(os.path.dirname(botocore.__file__), "data", service)
    paths = sorted(glob.glob(os.path.join(base, "*", "service-2.json*")))
    if not paths:
        sys.exit(f"botocore {botocore.__version__} has no model for {service!r}")
    path = paths[-1]
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        return json.load(f)


def extract(service):
    model = load(service)
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
        out = {k: s[k] for k in SHAPE_KEEP if k in s}
        if "members" in s:
            out["members"] = {m: {k: v[k] for k in MEMBER_KEEP if k in v} for m, v in s["members"].items()}
        for k in ("member", "key", "value"):
            if k in s:
                out[k] = {kk: s[k][kk] for kk in MEMBER_KEEP if kk in s[k]}
        shapes[name] = out
    meta = {k: model["metadata"][k] for k in META_KEEP if k in model["metadata"]}
    return {"metadata": meta, "operations": ops, "shapes": shapes}


def plain(doc):
    """botocore's HTML documentation as wrapped plain text."""
    text = re.sub(r"<p>|<li>|<br\s*/?>", "\n", doc or "")
    text = html.unescape(re.sub(r"<[^>]+>", "", text))
    paras = [" ".join(p.split()) for p in text.split("\n")]
    return "\n".join(textwrap.fill(p, 92, initial_indent="  ", subsequent_indent="  ")
                     for p in paras if p)


def show_doc(service, operation=None):
    model = load(service)
    if operation is None:
        for name in sorted(model["operations"]):
            print(name)
        return
    op = model["operations"].get(operation)
    if op is None:
        sys.exit(f"{service} has no operation {operation!r}")
    http = op.get("http", {})
    print(f"{service} {operation}  ({http.get('method', '')} {http.get('requestUri', '')})")
    print(plain(op.get("documentation")))
    shapes = model["shapes"]
    inp = shapes.get(op.get("input", {}).get("shape"), {})
    required = set(inp.get("required", []))
    for label, shape in (("input", inp), ("output", shapes.get(op.get("output", {}).get("shape"), {}))):
        if not shape.get("members"):
            continue
        print(f"\n{label} members:")
        for m, ref in shape["members"].items():
            target = shapes[ref["shape"]]
            kind = target["type"]
            extra = []
            if label == "input" and m in required:
                extra.append("required")
            if "enum" in target:
                extra.append("one of " + ", ".join(target["enum"]))
            for k in ("min", "max"):
                if k in target:
                    extra.append(f"{k} {target[k]}")
            if "location" in ref:
                extra.append(f"in {ref['location']} {ref.get('locationName', m)}")
            print(f"- {m} ({kind}: {ref['shape']}{'; ' + '; '.join(extra) if extra else ''})")
            d = plain(ref.get("documentation") or target.get("documentation"))
            if d:
                print(d)
    errors = [e["shape"] for e in op.get("errors", [])]
    if errors:
        print("\nerrors: " + ", ".join(errors))


def write_protocols(out_dir):
    """Signing name (and endpoint prefix) -> the protocol its clients speak first."""
    data_dir = os.path.join(os.path.dirname(botocore.__file__), "data")
    by_signing, by_prefix = {}, {}
    for service in sorted(os.listdir(data_dir)):
        if not glob.glob(os.path.join(data_dir, service, "*", "service-2.json*")):
            continue
        meta = load(service)["metadata"]
        protocol = (meta.get("protocols") or [meta["protocol"]])[0]
        by_signing.setdefault(meta.get("signingName", meta["endpointPrefix"]), protocol)
        by_prefix.setdefault(meta["endpointPrefix"], protocol)
    table = {**by_prefix, **by_signing}
    with open(os.path.join(out_dir, "protocols.json"), "w") as f:
        json.dump(table, f, indent=0, sort_keys=True)
        f.write("\n")
    print("protocols.json", len(table), "services")


def write(service, out_dir):
    data = json.dumps(extract(service), separators=(",", ":"), sort_keys=True).encode()
    with gzip.GzipFile(os.path.join(out_dir, service + ".json.gz"), "wb", mtime=0) as f:
        f.write(data)
    print(service, len(data), "bytes", f"botocore {botocore.__version__}")


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    if args[0] == "--doc":
        if len(args) not in (2, 3):
            sys.exit("usage: tools/gen-models.py --doc SERVICE [OPERATION]")
        show_doc(*args[1:])
        sys.exit(0)
    out_dir = os.path.join(os.path.dirname(__file__), "..", "crates", "berth-wire", "models")
    for svc in (SERVICES if args == ["--all"] else args):
        write(svc, out_dir)
    if args == ["--all"]:
        write_protocols(out_dir)
    with open(os.path.join(out_dir, "VERSION"), "w") as f:
        f.write(f"botocore {botocore.__version__}\n")
