#!/usr/bin/env bash
# Checks seccomp.json and capabilities.json under a real runc.
#
# Builds a throwaway OCI bundle (busybox-static plus the static probe built
# from probe.c), then runs:
#   A  probe, default caps + seccomp     every result must match the table
#   B  probe, all caps + seccomp         blocked calls must still be blocked:
#                                        the filter blocks them, not the caps
#   C  busybox sh, default caps + seccomp   must work; caps and seccomp mode
#   D  probe, default caps, NO seccomp   control, printed only
# Exits 0 when all checks pass, 1 on any mismatch, 2 when a tool is missing.
# Needs root, runc, gcc (static glibc), python3 and busybox-static
# (apt-get install busybox-static). Cleans up after itself.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RUNC=${RUNC:-runc}
BUSYBOX=${BUSYBOX:-/bin/busybox}

die() { echo "verify.sh: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "must run as root"
command -v "$RUNC" >/dev/null || die "runc not found"
command -v gcc >/dev/null || die "gcc not found"
command -v python3 >/dev/null || die "python3 not found"
[ -x "$BUSYBOX" ] || die "$BUSYBOX missing (apt-get install busybox-static)"
if ldd "$BUSYBOX" >/dev/null 2>&1; then
	die "$BUSYBOX is dynamically linked (apt-get install busybox-static)"
fi

rand=$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n')
tmp=$(mktemp -d /tmp/berth-verify.XXXXXX)
state="$tmp/state"
ids=()

cleanup() {
	for id in "${ids[@]}"; do
		"$RUNC" --root "$state" delete -f "$id" >/dev/null 2>&1 || true
	done
	# runc removes the leaf cgroups; drop ours and the parent if now empty.
	for d in /sys/fs/cgroup/berth-verify /sys/fs/cgroup/*/berth-verify; do
		[ -d "$d" ] || continue
		rmdir "$d"/"$rand"-* 2>/dev/null || true
		rmdir "$d" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

# ---- rootfs ----
rootfs="$tmp/rootfs"
mkdir -p "$rootfs"/{bin,proc,sys,dev,tmp,etc}
cp "$BUSYBOX" "$rootfs/bin/busybox"
for a in sh ls cat grep sleep true echo id; do
	ln -s busybox "$rootfs/bin/$a"
done
gcc -static -O2 -pthread -o "$rootfs/probe" "$here/probe.c"

# ---- bundles ----
mkdir -p "$tmp/spec"
"$RUNC" spec --bundle "$tmp/spec"

# make_bundle NAME CAPS(default|all) SECCOMP(yes|no) ARGS...
make_bundle() {
	local name=$1 caps=$2 seccomp=$3
	shift 3
	mkdir -p "$tmp/$name"
	python3 - "$tmp/spec/config.json" "$tmp/$name/config.json" "$here" "$rootfs" \
		"/berth-verify/$rand-$name" "$caps" "$seccomp" "$@" <<'EOF'
import json, sys
src, dst, here, rootfs, cgpath, caps, seccomp = sys.argv[1:8]
args = sys.argv[8:]
c = json.load(open(src))
if caps == "default":
    capset = json.load(open(f"{here}/capabilities.json"))
else:  # every capability this process may hand on (its bounding set)
    bnd = next(int(l.split()[1], 16) for l in open("/proc/self/status")
               if l.startswith("CapBnd:"))
    names = ["CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID",
             "KILL", "SETGID", "SETUID", "SETPCAP", "LINUX_IMMUTABLE",
             "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
             "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT",
             "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
             "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE",
             "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE",
             "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND",
             "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE"]
    capset = ["CAP_" + n for i, n in enumerate(names) if bnd >> i & 1]
p = c["process"]
p["terminal"] = False
p["args"] = args
# Like Docker (20.10.14 on): bounding, effective and permitted only.
p["capabilities"] = {k: list(capset) for k in ("bounding", "effective", "permitted")}
c["root"] = {"path": rootfs, "readonly": True}
lin = c["linux"]
lin["cgroupsPath"] = cgpath
if seccomp == "yes":
    lin["seccomp"] = json.load(open(f"{here}/seccomp.json"))
else:
    lin.pop("seccomp", None)
json.dump(c, open(dst, "w"), indent=2)
EOF
}

# run_bundle NAME -> output in $tmp/NAME.out, exit code in $tmp/NAME.rc
run_bundle() {
	local name=$1 id="berth-verify-$rand-$1" rc=0
	ids+=("$id")
	timeout 120 "$RUNC" --root "$state" run --bundle "$tmp/$name" "$id" \
		</dev/null >"$tmp/$name.out" 2>"$tmp/$name.err" || rc=$?
	echo "$rc" >"$tmp/$name.rc"
}

make_bundle A default yes /probe
make_bundle B all yes /probe
make_bundle C default yes /bin/sh -c \
	'echo hi; ls /; sleep 0.1; cat /proc/self/status | grep Cap; grep -E "^(Seccomp|NoNewPrivs):" /proc/self/status'
make_bundle D default no /probe
for r in A B C D; do run_bundle "$r"; done

python3 - "$tmp" "$here" <<'EOF'
import json, sys
tmp, here = sys.argv[1:3]

# Blocked by seccomp.json: EPERM whatever the capabilities.
FILTER = """keyctl add_key request_key unshare_newns unshare_newuser unshare_none
clone_newnet clone_newuser setns ptrace_traceme process_vm_readv kcmp bpf
perf_event_open mount umount2 pivot_root swapon swapoff reboot kexec_load
kexec_file_load init_module finit_module delete_module open_by_handle_at
settimeofday clock_settime acct lookup_dcookie quotactl syslog userfaultfd iopl
ioperm sethostname io_uring_setup fsopen pidfd_getfd set_mempolicy move_pages
vhangup personality_unsafe""".split()
# Allowed by the filter, refused by the kernel without CAP_SYS_TIME (run B has
# it and gets EINVAL from the deliberately invalid argument).
CAP_ONLY = "adjtimex_write clock_adjtime_write".split()
ALLOW = """getpid fork clone_plain pthread execve socket_inet socket_unix openat read
mmap pipe2 memfd_create getrandom uname clock_gettime sched_getaffinity prctl
chroot personality_query personality_linux32 personality_linux adjtimex_read
clock_adjtime_read""".split()
INFO = ["socket_vsock", "newer_than_profile"]

expect = {"A": {}, "B": {}}
for n in FILTER:
    expect["A"][n] = expect["B"][n] = "EPERM"
expect["A"]["clone3"] = expect["B"]["clone3"] = "ENOSYS"
for n in CAP_ONLY:
    expect["A"][n], expect["B"][n] = "EPERM", "EINVAL"
for n in ALLOW:
    expect["A"][n] = expect["B"][n] = "OK"

def load(run):
    out = open(f"{tmp}/{run}.out").read()
    rc = int(open(f"{tmp}/{run}.rc").read())
    res = {}
    for line in out.splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            res[k] = v
    return out, rc, res

bad = 0
def fail(msg, quiet=False):
    global bad
    bad += 1
    if not quiet:
        print("MISMATCH " + msg)

for run, title in (("A", "default caps + seccomp"), ("B", "all caps + seccomp")):
    out, rc, res = load(run)
    print(f"== run {run}: probe, {title} (exit {rc})")
    if rc != 0:
        fail(f"{run}: runc/probe exit {rc}: " + open(f"{tmp}/{run}.err").read().strip())
    for name, want in expect[run].items():
        got = res.get(name, "<missing>")
        ok = got == want
        print(f"  {'ok ' if ok else 'BAD'} {name}={got}" + ("" if ok else f" (want {want})"))
        if not ok:
            fail(f"{run}: {name}={got}, want {want}", quiet=True)
    for name in INFO:
        print(f"  info {name}={res.get(name, '<missing>')}")
    for name in res:
        if name not in expect[run] and name not in INFO:
            fail(f"{run}: unexpected probe line {name}={res[name]}")

caps = json.load(open(f"{here}/capabilities.json"))
bits = {"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_FOWNER": 3, "CAP_FSETID": 4,
        "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8,
        "CAP_NET_BIND_SERVICE": 10, "CAP_NET_RAW": 13, "CAP_SYS_CHROOT": 18,
        "CAP_MKNOD": 27, "CAP_AUDIT_WRITE": 29, "CAP_SETFCAP": 31}
if len(caps) != 14 or len(set(caps)) != 14 or set(caps) != set(bits):
    fail(f"capabilities.json is not Docker's 14 default caps: {caps}")
mask = "%016x" % sum(1 << bits[c] for c in caps if c in bits)
out, rc, _ = load("C")
print(f"== run C: busybox sh, default caps + seccomp (exit {rc})")
print("\n".join("  " + l for l in out.splitlines()))
if rc != 0:
    fail(f"C: exit {rc}: " + open(f"{tmp}/C.err").read().strip())
lines = out.splitlines()
if not lines or lines[0] != "hi":
    fail("C: first line is not 'hi'")
if "probe" not in out or "bin" not in out:
    fail("C: ls / did not list the rootfs")
for field, want in (("CapInh", "0" * 16), ("CapPrm", mask), ("CapEff", mask),
                    ("CapBnd", mask), ("CapAmb", "0" * 16),
                    ("Seccomp", "2"), ("NoNewPrivs", "1")):
    got = next((l.split(":", 1)[1].strip() for l in lines if l.startswith(field + ":")), None)
    if got != want:
        fail(f"C: {field}={got}, want {want}")

out, rc, res = load("D")
_, _, resA = load("A")
print(f"== run D (control): probe, default caps, no seccomp (exit {rc}); "
      "calls whose result the filter changes:")
changed = [n for n in FILTER + ["clone3"] if res.get(n) != resA.get(n)]
for n in changed:
    print(f"  {n}: {res.get(n)} without the filter, {resA.get(n)} with it")
same = [n for n in FILTER if n not in changed]
print(f"  also refused by the kernel for lack of a capability alone: {' '.join(same) or '-'}")

print("PASS" if bad == 0 else f"FAIL: {bad} mismatch(es)")
sys.exit(0 if bad == 0 else 1)
EOF
