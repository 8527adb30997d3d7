/*
 * devprobe: test code for test/vm/test_enclave_kernel.sh. Runs as the guest's PID 1 before
 * nsign (rdinit=/devprobe added to an EIF's own command line), reports what the kernel found,
 * then execs /bin/enclave-entrypoint (or PROBE_NEXT) with the arguments the kernel gave it
 * (the command-line words it did not know, as AWS's `nomodules`), so that nsign is PID 1 for
 * the rest of the boot exactly as without the probe. Built static with musl-gcc; needs nothing
 * from nsign.
 *
 * It mounts /proc, /sys and /dev (devtmpfs), loads the modules listed in the environment
 * variable PROBE_MODULES (comma-separated .ko paths; the kernel passes unknown NAME=VALUE
 * command-line words to init as environment), then prints one line per fact, all starting
 * with "devprobe: ":
 *   virtio-devices N                    devices on the virtio bus
 *   virtio DEV id=0xID driver=NAME       one per device (driver "-" when none is bound)
 *   hwrng available=LIST current=NAME    /sys/class/misc/hw_random (absent: "none")
 *   hwrng read N bytes | hwrng read failed: ERR     16 bytes from /dev/hwrng
 *   nsm GetRandom N bytes | nsm open failed: ERR | nsm ioctl failed: ERR
 *   exec PROGRAM ARGS...                 PROBE_NEXT, default /bin/enclave-entrypoint
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The NSM driver's one ioctl: two iovecs (request, response), as in the kernel's uapi. */
struct nsm_iovec {
    uint64_t addr;
    uint64_t len;
};
struct nsm_raw {
    struct nsm_iovec request;
    struct nsm_iovec response;
};
#define NSM_IOCTL_RAW _IOWR(0x0A, 0, struct nsm_raw)

static void say(const char *fmt, const char *a, const char *b)
{
    printf("devprobe: ");
    printf(fmt, a, b);
    printf("\n");
    fflush(stdout);
}

static void read_line(const char *path, char *out, size_t n)
{
    snprintf(out, n, "none");
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return;
    }
    if (fgets(out, (int)n, f) == NULL) {
        snprintf(out, n, "none");
    }
    out[strcspn(out, "\n")] = '\0';
    if (out[0] == '\0') {
        snprintf(out, n, "empty");
    }
    fclose(f);
}

static void load_modules(void)
{
    const char *list = getenv("PROBE_MODULES");
    if (list == NULL || list[0] == '\0') {
        return;
    }
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save = NULL, *p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || syscall(SYS_finit_module, fd, "", 0) != 0) {
            say("module %s failed: %s", p, strerror(errno));
        } else {
            say("module %s loaded%s", p, "");
        }
        if (fd >= 0) {
            close(fd);
        }
    }
}

static void virtio_devices(void)
{
    DIR *d = opendir("/sys/bus/virtio/devices");
    int n = 0;
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.') {
                continue;
            }
            char path[512], id[64], drv[256] = "-";
            snprintf(path, sizeof path, "/sys/bus/virtio/devices/%s/device", e->d_name);
            read_line(path, id, sizeof id);
            snprintf(path, sizeof path, "/sys/bus/virtio/devices/%s/driver", e->d_name);
            char target[256];
            ssize_t k = readlink(path, target, sizeof target - 1);
            if (k > 0) {
                target[k] = '\0';
                const char *slash = strrchr(target, '/');
                snprintf(drv, sizeof drv, "%s", slash ? slash + 1 : target);
            }
            printf("devprobe: virtio %s id=%s driver=%s\n", e->d_name, id, drv);
            n++;
        }
        closedir(d);
    }
    printf("devprobe: virtio-devices %d\n", n);
    fflush(stdout);
}

static void hwrng(void)
{
    char avail[256], cur[128];
    read_line("/sys/class/misc/hw_random/rng_available", avail, sizeof avail);
    read_line("/sys/class/misc/hw_random/rng_current", cur, sizeof cur);
    printf("devprobe: hwrng available=%s current=%s\n", avail, cur);
    int fd = open("/dev/hwrng", O_RDONLY | O_CLOEXEC);
    unsigned char b[16];
    ssize_t n = fd >= 0 ? read(fd, b, sizeof b) : -1;
    if (n > 0) {
        printf("devprobe: hwrng read %zd bytes\n", n);
    } else {
        printf("devprobe: hwrng read failed: %s\n", n == 0 ? "end of file" : strerror(errno));
    }
    if (fd >= 0) {
        close(fd);
    }
    fflush(stdout);
}

static void nsm(void)
{
    int fd = open("/dev/nsm", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        say("nsm open failed: %s%s", strerror(errno), "");
        return;
    }
    /* CBOR text string "GetRandom"; the reply is {"GetRandom": {"random": bstr}}. */
    static const unsigned char req[] = {0x69, 'G', 'e', 't', 'R', 'a', 'n', 'd', 'o', 'm'};
    static unsigned char resp[0x3000];
    struct nsm_raw raw = {{(uintptr_t)req, sizeof req}, {(uintptr_t)resp, sizeof resp}};
    if (ioctl(fd, NSM_IOCTL_RAW, &raw) != 0) {
        say("nsm ioctl failed: %s%s", strerror(errno), "");
    } else if (raw.response.len > 30 && memmem(resp, raw.response.len, "random", 6) != NULL) {
        printf("devprobe: nsm GetRandom %llu bytes\n", (unsigned long long)raw.response.len);
    } else {
        printf("devprobe: nsm GetRandom unexpected reply of %llu bytes\n",
               (unsigned long long)raw.response.len);
    }
    fflush(stdout);
    close(fd);
}

int main(int argc, char **argv)
{
    mkdir("/proc", 0555);
    mkdir("/sys", 0555);
    mkdir("/dev", 0755);
    if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0 ||
        mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0 ||
        mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755") != 0) {
        say("mount failed: %s%s", strerror(errno), "");
    }
    load_modules();
    virtio_devices();
    hwrng();
    nsm();
    const char *next = getenv("PROBE_NEXT");
    if (next == NULL || next[0] == '\0') {
        next = "/bin/enclave-entrypoint";
    }
    printf("devprobe: exec %s", next);
    for (int i = 1; i < argc; i++) {
        printf(" %s", argv[i]);
    }
    printf("\n");
    fflush(stdout);
    argv[0] = (char *)next;
    execv(next, argv);
    say("exec %s failed: %s", next, strerror(errno));
    return 1;
}
