/* Seccomp probe for verify.sh: tries each syscall once and prints
 * "name=OK" or "name=<ERRNO NAME>" (EPERM, ENOSYS, EINVAL, ...).
 * It decides nothing itself; verify.sh compares the lines with what the
 * profile should do.
 *
 * Arguments are chosen so that a call that got past the filter does no
 * harm and, where the kernel allows it, fails with something other than
 * EPERM (bad flags, bad fd, missing file): an EPERM then comes from the
 * filter, not from a missing capability. Calls that change the calling
 * process for good (unshare, ptrace, personality) run in a forked child.
 *
 * Build: gcc -static -O2 -pthread -o probe probe.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/swap.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/timex.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/kcmp.h>
#include <linux/keyctl.h>
#include <linux/userfaultfd.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

/* Print one result line: rc < 0 means failure with errno set. */
static void report(const char *name, long rc)
{
	if (rc >= 0) {
		printf("%s=OK\n", name);
	} else {
		const char *e = strerrorname_np(errno);
		if (e)
			printf("%s=%s\n", name, e);
		else
			printf("%s=E%d\n", name, errno);
	}
	fflush(stdout);
}

/* Run fn in a forked child; the child's exit code carries errno (0 = OK). */
static long in_child(int (*fn)(void))
{
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0)
		_exit(fn() < 0 ? errno : 0);
	int st;
	if (waitpid(pid, &st, 0) < 0)
		return -1;
	if (WIFEXITED(st)) {
		errno = WEXITSTATUS(st);
		return errno ? -1 : 0;
	}
	errno = ECHILD; /* killed by a signal: counts as a mismatch */
	return -1;
}

/* Raw clone(2) used like fork; the child exits at once. */
static long raw_clone(unsigned long flags)
{
	long pid = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
	if (pid == 0)
		_exit(0);
	if (pid > 0)
		waitpid((pid_t)pid, NULL, 0);
	return pid;
}

static int c_unshare_newns(void) { return unshare(CLONE_NEWNS); }
static int c_unshare_newuser(void) { return unshare(CLONE_NEWUSER); }
static int c_unshare_none(void) { return unshare(0); }
static int c_noop(void) { return 0; }
static int c_ptrace(void) { return (int)ptrace(PTRACE_TRACEME, 0, NULL, NULL); }
/* ADDR_NO_RANDOMIZE: not one of the allowed personality values. */
static int c_personality_unsafe(void) { return (int)syscall(SYS_personality, 0x0040000UL); }
static int c_execve(void)
{
	char *argv[] = {"true", NULL}, *envp[] = {NULL};
	execve("/bin/true", argv, envp);
	return -1;
}

static void *thread_fn(void *arg) { return arg; }

int main(void)
{
	long rc;
	pid_t self = getpid();

	/* ---- expected to be blocked by the filter ---- */
	report("keyctl", syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0));
	report("add_key", syscall(SYS_add_key, "user", "berth-probe", "x", 1, KEY_SPEC_PROCESS_KEYRING));
	report("request_key", syscall(SYS_request_key, "user", "berth-probe-none", NULL, 0));
	report("unshare_newns", in_child(c_unshare_newns));
	report("unshare_newuser", in_child(c_unshare_newuser));
	report("unshare_none", in_child(c_unshare_none));
	report("clone_newnet", raw_clone(CLONE_NEWNET));
	report("clone_newuser", raw_clone(CLONE_NEWUSER));
	report("clone3", syscall(SYS_clone3, NULL, 0)); /* ENOSYS, not EPERM */
	report("setns", syscall(SYS_setns, -1, 0));
	report("ptrace_traceme", in_child(c_ptrace));
	{
		char src[8] = "abc", dst[8];
		struct iovec l = {dst, 4}, r = {src, 4};
		report("process_vm_readv", syscall(SYS_process_vm_readv, self, &l, 1, &r, 1, 0));
	}
	report("kcmp", syscall(SYS_kcmp, self, self, KCMP_FILE, 0, 0));
	{
		char attr[128] = {0};
		report("bpf", syscall(SYS_bpf, 9999, attr, sizeof attr)); /* bad cmd */
	}
	report("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
	report("mount", syscall(SYS_mount, NULL, NULL, NULL, 0, NULL)); /* NULL target */
	report("umount2", syscall(SYS_umount2, "/", 0x80000000UL));    /* bad flags */
	report("pivot_root", syscall(SYS_pivot_root, "/nonexistent-a", "/nonexistent-b"));
	report("swapon", syscall(SYS_swapon, "/nonexistent-swap", 0));
	report("swapoff", syscall(SYS_swapoff, "/nonexistent-swap"));
	report("reboot", syscall(SYS_reboot, 0, 0, 0, NULL)); /* bad magic */
	report("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0xdead0000UL));
	report("kexec_file_load", syscall(SYS_kexec_file_load, -1, -1, 0, NULL, 0xdead0000UL));
	report("init_module", syscall(SYS_init_module, NULL, 0, ""));
	report("finit_module", syscall(SYS_finit_module, -1, "", 0));
	report("delete_module", syscall(SYS_delete_module, "berth_probe_none", O_NONBLOCK));
	report("open_by_handle_at", syscall(SYS_open_by_handle_at, -1, NULL, O_RDONLY));
	{
		struct timeval tv = {0, 2000000}; /* invalid usec */
		report("settimeofday", syscall(SYS_settimeofday, &tv, NULL));
		struct timespec ts = {0, 0};
		report("clock_settime", syscall(SYS_clock_settime, 9999, &ts)); /* bad clock */
	}
	report("acct", syscall(SYS_acct, "/nonexistent-acct"));
	report("lookup_dcookie", syscall(SYS_lookup_dcookie, 0, NULL, 0));
	report("quotactl", syscall(SYS_quotactl, 0xffffffffU, NULL, 0, NULL)); /* bad type */
	report("syslog", syscall(SYS_syslog, 10, NULL, 0));                    /* size query */
	rc = syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
	report("userfaultfd", rc);
	if (rc >= 0)
		close((int)rc);
	report("iopl", syscall(SYS_iopl, 0));
	report("ioperm", syscall(SYS_ioperm, 0, 0, 0));
	report("sethostname", syscall(SYS_sethostname, NULL, 1000));
	report("io_uring_setup", syscall(SYS_io_uring_setup, 0, NULL));
	report("fsopen", syscall(SYS_fsopen, NULL, 0));
	report("pidfd_getfd", syscall(SYS_pidfd_getfd, -1, 0, 0));
	report("set_mempolicy", syscall(SYS_set_mempolicy, 0, NULL, 0));
	report("move_pages", syscall(SYS_move_pages, 0, 0, NULL, NULL, NULL, 0));
	report("vhangup", syscall(SYS_vhangup));
	report("personality_unsafe", in_child(c_personality_unsafe));

	/* ---- refused by the kernel for lack of CAP_SYS_TIME, not by the filter ---- */
	{
		struct timex tx;
		memset(&tx, 0, sizeof tx);
		tx.modes = ADJ_TICK;
		tx.tick = 1; /* out of range: EINVAL even if the caller had CAP_SYS_TIME */
		report("adjtimex_write", syscall(SYS_adjtimex, &tx));
		memset(&tx, 0, sizeof tx);
		tx.modes = ADJ_TICK;
		tx.tick = 1;
		report("clock_adjtime_write", syscall(SYS_clock_adjtime, CLOCK_REALTIME, &tx));
	}

	/* ---- expected to work ---- */
	report("getpid", syscall(SYS_getpid));
	report("fork", in_child(c_noop));
	report("clone_plain", raw_clone(0));
	{
		pthread_t t;
		int e = pthread_create(&t, NULL, thread_fn, NULL); /* clone3 -> ENOSYS -> clone */
		if (e == 0)
			e = pthread_join(t, NULL);
		errno = e;
		report("pthread", e ? -1 : 0);
	}
	report("execve", in_child(c_execve));
	rc = socket(AF_INET, SOCK_STREAM, 0);
	report("socket_inet", rc);
	if (rc >= 0)
		close((int)rc);
	rc = socket(AF_UNIX, SOCK_DGRAM, 0);
	report("socket_unix", rc);
	if (rc >= 0)
		close((int)rc);
	rc = socket(AF_VSOCK, SOCK_STREAM, 0); /* informational: either way is fine */
	report("socket_vsock", rc);
	if (rc >= 0)
		close((int)rc);
	/* informational: mseal (462) is newer than every name in the profile;
	 * runc answers ENOSYS for such calls so libc can fall back */
	report("newer_than_profile", syscall(462, NULL, 0, 0));
	rc = syscall(SYS_openat, AT_FDCWD, "/proc/self/status", O_RDONLY | O_CLOEXEC);
	report("openat", rc);
	if (rc >= 0) {
		char buf[256];
		report("read", read((int)rc, buf, sizeof buf));
		close((int)rc);
	}
	{
		void *p = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		rc = p == MAP_FAILED ? -1 : 0;
		if (rc == 0) {
			memset(p, 1, 65536);
			rc = mprotect(p, 4096, PROT_READ);
			if (rc == 0)
				rc = munmap(p, 65536);
		}
		report("mmap", rc);
	}
	{
		int fds[2];
		rc = pipe2(fds, O_CLOEXEC);
		report("pipe2", rc);
		if (rc == 0) {
			close(fds[0]);
			close(fds[1]);
		}
	}
	rc = syscall(SYS_memfd_create, "probe", 0);
	report("memfd_create", rc);
	if (rc >= 0)
		close((int)rc);
	{
		char b[16];
		report("getrandom", syscall(SYS_getrandom, b, sizeof b, 0));
		struct utsname u;
		report("uname", uname(&u));
		struct timespec ts;
		report("clock_gettime", clock_gettime(CLOCK_MONOTONIC, &ts));
		cpu_set_t cs;
		report("sched_getaffinity", sched_getaffinity(0, sizeof cs, &cs));
	}
	report("prctl", syscall(SYS_prctl, 15 /* PR_SET_NAME */, "probe", 0, 0, 0));
	report("chroot", syscall(SYS_chroot, "/")); /* CAP_SYS_CHROOT is a default cap */
	report("personality_query", syscall(SYS_personality, 0xffffffffUL));
	rc = syscall(SYS_personality, 8UL); /* PER_LINUX32 */
	report("personality_linux32", rc);
	report("personality_linux", syscall(SYS_personality, 0UL)); /* back to PER_LINUX */
	{
		struct timex tx;
		memset(&tx, 0, sizeof tx);
		report("adjtimex_read", syscall(SYS_adjtimex, &tx));
		memset(&tx, 0, sizeof tx);
		report("clock_adjtime_read", syscall(SYS_clock_adjtime, CLOCK_REALTIME, &tx));
	}
	return 0;
}
