#!/usr/bin/env python3
"""Registry-side speed, Berth against Debian's docker-registry (the reference
distribution registry), in one run, alternating and taking medians.

Measures, for pre-hashed 50 MiB blobs of fresh random bytes, moved by a small Rust
client (crates/berth/examples/registry_client.rs) that is not the bottleneck:
  - monolithic uploads (POST, then one PUT with the bytes) and chunked uploads
    (POST, PATCH x5, PUT);
  - the same bytes written from memory and fsynced to a file on the same disk, by the
    same client (the limit);
  - downloads (GET) of uploaded blobs;
  - 16 concurrent pulls of one 4-layer image (manifest and blobs), aggregate MB/s;
and, with skopeo (the client users run), push and pull of a ~200 MiB 4-layer image.

Usage: bench/registry.py BERTH_URL REGISTRY_URL WORKDIR [ROUNDS]
Both servers must already run; BERTH_URL must accept ECR CreateRepository.
"""
import hashlib, http.client, json, os, statistics, subprocess, sys, threading, time, urllib.parse

MIB = 1024 * 1024
BLOB = 50 * MIB
CHUNKS = 5
# skopeo does most of the work in a push or pull, so the servers' difference is small
# against its own variance: five rounds, not three (SKOPEO_ROUNDS=N for more).
SKOPEO_ROUNDS = int(os.environ.get("SKOPEO_ROUNDS", "5"))


def conn(url):
    u = urllib.parse.urlparse(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=120)


def request(url, method, path, body=None, headers=None):
    c = conn(url)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data


def create_repo(berth, name):
    body = json.dumps({"repositoryName": name}).encode()
    status, _, data = request(berth, "POST", "/", body, {
        "X-Amz-Target": "AmazonEC2ContainerRegistry_V20150921.CreateRepository",
        "Content-Type": "application/x-amz-json-1.1",
    })
    assert status in (200, 400), data


def fresh_blob():
    data = os.urandom(BLOB)
    return data, "sha256:" + hashlib.sha256(data).hexdigest()


SHM = "/dev/shm/berth-bench-blob"


def settle():
    """Flush everything dirty before a timed write. docker-registry does not fsync, so
    without this its pending writeback would land inside the next measurement."""
    os.sync()


CLIENT = os.environ.get("REGISTRY_CLIENT", "target/release/examples/registry_client")


def client(args):
    """Run the benchmark client (crates/berth/examples/registry_client.rs); returns the
    seconds it timed. It loads its input before the clock starts and keeps one keep-alive
    connection, so it is not the bottleneck (curl's --data-binary is: sending 50 MiB to a
    server that only reads takes it about as long as the disk takes to store them)."""
    p = subprocess.run([CLIENT] + args, check=True, capture_output=True, text=True)
    return float(p.stdout.strip())


def upload_monolithic(url, repo, data, digest):
    """The spec's monolithic upload: POST for a session, then one PUT with every byte."""
    with open(SHM, "wb") as f:
        f.write(data)
    settle()
    dt = client(["mono", url, repo, SHM, digest])
    os.remove(SHM)
    return dt


def upload_chunked(url, repo, data, digest):
    """POST, then CHUNKS PATCHes with Content-Range, then a PUT with the digest."""
    with open(SHM, "wb") as f:
        f.write(data)
    settle()
    dt = client(["chunked", url, repo, SHM, digest, str(CHUNKS)])
    os.remove(SHM)
    return dt


def download(url, repo, digest):
    return client(["get", url, repo, digest])


def write_fsync(workdir, data):
    """The limit: the same bytes written from memory to a file on the same disk and
    fsynced, by the same client program."""
    with open(SHM, "wb") as f:
        f.write(data)
    path = os.path.join(workdir, "fsync-probe")
    settle()
    dt = client(["fsync", SHM, path])
    os.remove(path)
    os.remove(SHM)
    return dt


def put_image(url, repo, tag, layers):
    """layers: list of (digest, size). Uploads a config and an OCI manifest."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [d for d, _ in layers]}}).encode()
    cd = "sha256:" + hashlib.sha256(config).hexdigest()
    upload_monolithic(url, repo, config, cd)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": s} for d, s in layers],
    }).encode()
    status, _, body = request(url, "PUT", f"/v2/{repo}/manifests/{tag}", manifest,
                              {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert status == 201, body


def pull_image(url, repo, tag):
    status, _, m = request(url, "GET", f"/v2/{repo}/manifests/{tag}", None,
                           {"Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert status == 200
    total = 0
    for l in json.loads(m)["layers"]:
        total += BLOB
        download(url, repo, l["digest"])
    return total


def concurrent_pulls(url, repo, tag, n=16):
    errors = []

    def worker():
        try:
            pull_image(url, repo, tag)
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    dt = time.perf_counter() - t
    assert not errors, errors
    return n * 4 * BLOB / dt / MIB


def make_layout(workdir, name):
    """An OCI layout with 4 uncompressed 50 MiB layers of fresh random bytes (~200 MiB)."""
    root = os.path.join(workdir, name)
    blobs = os.path.join(root, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    layers = []
    for i in range(4):
        src = os.path.join(workdir, f"rand{i}")
        with open(src, "wb") as f:
            f.write(os.urandom(BLOB))
        tarpath = os.path.join(workdir, f"layer{i}.tar")
        subprocess.run(["tar", "-C", workdir, "-cf", tarpath, f"rand{i}"], check=True)
        data = open(tarpath, "rb").read()
        d = hashlib.sha256(data).hexdigest()
        os.replace(tarpath, os.path.join(blobs, d))
        os.remove(src)
        layers.append((d, len(data)))
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": ["sha256:" + d for d, _ in layers]}}).encode()
    cd = hashlib.sha256(config).hexdigest()
    open(os.path.join(blobs, cd), "wb").write(config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + cd, "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:" + d, "size": s} for d, s in layers],
    }).encode()
    md = hashlib.sha256(manifest).hexdigest()
    open(os.path.join(blobs, md), "wb").write(manifest)
    json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                                   "digest": "sha256:" + md, "size": len(manifest),
                                                   "annotations": {"org.opencontainers.image.ref.name": "big"}}]},
              open(os.path.join(root, "index.json"), "w"))
    open(os.path.join(root, "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
    return root


def skopeo(args):
    t = time.perf_counter()
    subprocess.run(["skopeo", "--insecure-policy"] + args, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main():
    berth, reg, workdir = sys.argv[1], sys.argv[2], sys.argv[3]
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    servers = {"berth": berth, "registry": reg}
    for i in range(rounds + 2):
        create_repo(berth, f"bench{i}")
    create_repo(berth, "big")
    create_repo(berth, "pull")
    res = {k: {"mono": [], "chunked": [], "get": []} for k in servers}
    res["fsync"] = []
    for r in range(rounds):
        order = list(servers.items()) if r % 2 == 0 else list(reversed(servers.items()))
        for name, url in order:
            data, d = fresh_blob()
            res[name]["mono"].append(upload_monolithic(url, f"bench{r}", data, d))
            res[name]["get"].append(download(url, f"bench{r}", d))
            data, d = fresh_blob()
            res[name]["chunked"].append(upload_chunked(url, f"bench{r}", data, d))
        data, _ = fresh_blob()
        res["fsync"].append(write_fsync(workdir, data))

    def mbps(times):
        return BLOB / statistics.median(times) / MIB

    out = {}
    for name in servers:
        out[name] = {k: mbps(v) for k, v in res[name].items()}
    out["fsync"] = mbps(res["fsync"])

    # 16 concurrent pulls of one 4-layer image.
    for name, url in servers.items():
        layers = []
        for _ in range(4):
            data, d = fresh_blob()
            upload_monolithic(url, "pull", data, d)
            layers.append((d, len(data)))
        put_image(url, "pull", "latest", layers)
    for name, url in servers.items():
        out[name]["pull16"] = concurrent_pulls(url, "pull", "latest")

    # skopeo push and pull of a ~200 MiB image, alternating, medians.
    sk = {k: {"push": [], "pull": []} for k in servers}
    for r in range(SKOPEO_ROUNDS):
        order = list(servers.items()) if r % 2 == 0 else list(reversed(servers.items()))
        for name, url in order:
            # Fresh layers every push: nothing can be skipped or mounted as already present.
            layout = make_layout(workdir, f"layout-{name}-{r}")
            host = urllib.parse.urlparse(url).netloc
            # A fresh repository each time, so nothing is skipped as already present.
            create_repo(berth, f"big{r}")
            sk[name]["push"].append(skopeo(["copy", "--dest-tls-verify=false", f"oci:{layout}:big", f"docker://{host}/big{r}:v1"]))
            dest = os.path.join(workdir, f"pulled-{name}-{r}")
            sk[name]["pull"].append(skopeo(["copy", "--src-tls-verify=false", f"docker://{host}/big{r}:v1", f"oci:{dest}:v1"]))
            subprocess.run(["rm", "-rf", dest, layout], check=True)
    for name in servers:
        out[name]["skopeo_push_s"] = statistics.median(sk[name]["push"])
        out[name]["skopeo_pull_s"] = statistics.median(sk[name]["pull"])

    b, g = out["berth"], out["registry"]
    print(f"{'MB/s (median of ' + str(rounds) + ')':<34}{'berth':>10}{'registry':>10}{'ratio':>8}")
    for k, label in [("mono", "monolithic upload 50 MiB"), ("chunked", "chunked upload 50 MiB (5 PATCH)"),
                     ("get", "download 50 MiB"), ("pull16", "16 concurrent pulls, aggregate")]:
        print(f"{label:<34}{b[k]:>10.0f}{g[k]:>10.0f}{b[k] / g[k]:>8.2f}")
    print(f"{'write+fsync of 50 MiB (the limit)':<34}{out['fsync']:>10.0f}")
    print(f"berth monolithic upload / write+fsync limit: {b['mono'] / out['fsync']:.2f} (>= 1/1.3 = 0.77 is within 1.3x)")
    # Every round, so one slow phase of the machine shows as what it is.
    for label, times in [("berth monolithic", res["berth"]["mono"]), ("write+fsync", res["fsync"])]:
        print(f"  ms per round, {label}: " + " ".join(f"{t * 1000:.1f}" for t in times))
    print(f"{'seconds (median of ' + str(SKOPEO_ROUNDS) + ')':<34}{'berth':>10}{'registry':>10}{'ratio':>8}")
    for k, label in [("skopeo_push_s", "skopeo push ~200 MiB"), ("skopeo_pull_s", "skopeo pull ~200 MiB")]:
        print(f"{label:<34}{b[k]:>10.2f}{g[k]:>10.2f}{g[k] / b[k]:>8.2f}")
    json.dump(out, open(os.path.join(workdir, "results.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
