/*
 * pid1: what an enclave's init must do when nsign is the image's only binary and runs as PID 1
 * (no AWS init, no shell): mount /proc, /sys and /dev, load the kernel modules named in the
 * config (nsm.ko), bring the loopback interface up, seed the kernel's entropy pool from the NSM,
 * reap orphans, and send the Nitro boot heartbeat (byte 0xB7 to vsock:3:9000, echoed back;
 * nitro-cli treats a missing heartbeat as a failed boot).
 *
 * Every function takes its paths or addresses as arguments so tests can point it at a scratch
 * directory, a fake interface name or a unix socket. Nothing here prints; errors carry a message.
 */
#ifndef NS_PID1_H
#define NS_PID1_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "err.h"

#define NS_PID1_HEARTBEAT_BYTE 0xB7
#define NS_PID1_MODULES_MAX 8      /* modules named in NSIGN_MODULES */
#define NS_PID1_ENV_FILE_MAX 65536 /* /env as written by the EIF builder */
#define NS_PID1_ENTROPY_BYTES 256  /* NSM randomness credited to the pool at boot */

/*
 * Mounts proc on ROOT/proc, sysfs on ROOT/sys and devtmpfs on ROOT/dev (creating the
 * directories). A target that is already a mount of the right type is left alone.
 */
ns_err ns_pid1_mount_all(const char *root) NS_MUST_CHECK;

/* Loads one kernel module with finit_module(2). EEXIST (already loaded) is success. */
ns_err ns_pid1_load_module(const char *path, const char *params) NS_MUST_CHECK;

/*
 * Loads each module of a comma-separated list of paths; *loaded counts the ones loaded.
 * A path that does not exist fails (the config named it, so it is expected).
 */
ns_err ns_pid1_load_modules(const char *list, int *loaded) NS_MUST_CHECK;

/* Sets IFF_UP on an interface (SIOCGIFFLAGS/SIOCSIFFLAGS); the kernel adds 127.0.0.1/8 on lo. */
ns_err ns_netif_up(const char *ifname) NS_MUST_CHECK;
/* Whether an interface is up (*up = 0/1). */
ns_err ns_netif_is_up(const char *ifname, int *up) NS_MUST_CHECK;

/*
 * Sends the heartbeat byte to addr and waits for it to be echoed, within timeout_ms.
 * NS_E_PROTO when something else comes back.
 */
ns_err ns_pid1_heartbeat(const ns_addr *addr, int timeout_ms) NS_MUST_CHECK;

/*
 * Adds n bytes from the NSM to the kernel pool of the random device at dev_path (normally
 * /dev/random) and credits them (RNDADDENTROPY), so getrandom() never blocks early in boot.
 */
ns_err ns_pid1_seed_entropy(const char *dev_path, size_t n) NS_MUST_CHECK;

/* Called for each KEY=VALUE of an env file, in order. */
typedef ns_err (*ns_pid1_env_fn)(void *ctx, const char *key, const char *value);

/*
 * Parses KEY=VALUE lines (empty lines and lines starting with '#' skipped; KEY
 * [A-Za-z_][A-Za-z0-9_]*; printable bytes only; lines under 4 KiB). No I/O: fuzzed directly.
 */
ns_err ns_pid1_env_parse(const uint8_t *p, size_t n, ns_pid1_env_fn fn, void *ctx) NS_MUST_CHECK;

/*
 * Reads a file of KEY=VALUE lines (the /env an EIF builder writes) and sets each variable that
 * is not already set. Lines must be printable; keys [A-Za-z_][A-Za-z0-9_]*. *count = set vars.
 * A missing file is not an error (*count = 0).
 */
ns_err ns_pid1_load_env(const char *path, int *count) NS_MUST_CHECK;

/* Installs a SIGCHLD handler that reaps every exited child (PID 1 inherits orphans). */
ns_err ns_pid1_reap_children(void) NS_MUST_CHECK;

#endif
