/*
 * emu: run-enclave's local Nitro. Boots an EIF under QEMU's nitro-enclave machine (which loads
 * the EIF itself, measures PCR0/1/2 into its emulated NSM and announces its virtio-mmio devices
 * on the kernel command line as Nitro does), with nsign's own vhost-user vsock backend
 * (`nsign vhost-vsock`) as its vsock, and answers the enclave's boot heartbeat (0xB7 to CID 3
 * port 9000, echoed) like nitro-cli does.
 *
 * Every vsock port becomes a unix socket in one directory: the enclave's listening port P is
 * DIR/enclave-P.sock (the backend listens there), a parent port P the enclave connects to is
 * DIR/parent-P.sock (someone on the host listens there: run-enclave's bridges, and emu itself
 * for the heartbeat). No AF_VSOCK socket is ever opened on the host.
 *
 * QEMU runs with TCG (no KVM needed); its serial console goes to console_file. Stopping stops
 * QEMU first, then the backend.
 */
#ifndef NS_EMU_H
#define NS_EMU_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "supervise.h"
#include "stop.h"

#define NS_EMU_HEARTBEAT_PORT 9000u
#define NS_EMU_HEARTBEAT_BYTE 0xB7
#define NS_EMU_MAX_PORTS 16

typedef struct {
    const char *self; /* the nsign binary (for the backend) */
    const char *qemu; /* qemu-system-x86_64 with the nitro-enclave machine */
    const char *eif, *name, *cpu, *mem, *cid;
    const char *console_file;
    const char *dir; /* where the sockets live; created 0700 */
    uint32_t enclave_ports[NS_EMU_MAX_PORTS]; /* host -> enclave */
    size_t n_enclave;
    uint32_t parent_ports[NS_EMU_MAX_PORTS]; /* enclave -> host (the heartbeat is added) */
    size_t n_parent;
} ns_emu_cfg;

typedef struct {
    ns_supervise_child backend, qemu;
    int hb_fd;
    int64_t boot_ms; /* QEMU start to heartbeat */
    char argbuf[8192];
    char *argv_backend[NS_SPAWN_ARGV_MAX];
    char *argv_qemu[NS_SPAWN_ARGV_MAX];
} ns_emu;

/* "unix:DIR/enclave-P.sock" or "unix:DIR/parent-P.sock". */
ns_err ns_emu_addr(char *out, size_t cap, const char *dir, int enclave_side,
                   uint32_t port) NS_MUST_CHECK;
/* NSIGN_QEMU, else build/qemu/qemu-system-x86_64 beside the nsign binary's build, else PATH. */
ns_err ns_emu_find_qemu(const char *self, char *out, size_t cap) NS_MUST_CHECK;
/* Checks that qemu has the nitro-enclave machine (runs `qemu -M help`). */
ns_err ns_emu_check_qemu(const char *qemu) NS_MUST_CHECK;

void ns_emu_init(ns_emu *e);
/* Fills e->argv_backend and e->argv_qemu (also for --dry-run). */
ns_err ns_emu_build(ns_emu *e, const ns_emu_cfg *c) NS_MUST_CHECK;
/* Starts the backend, waits for its socket, listens for the heartbeat, starts QEMU. */
ns_err ns_emu_start(ns_emu *e, const ns_emu_cfg *c) NS_MUST_CHECK;
/* Waits for the enclave's heartbeat and echoes it; fails when QEMU or the backend exits. */
ns_err ns_emu_wait_heartbeat(ns_emu *e, int timeout_ms,
                             ns_stop *stop) NS_MUST_CHECK;
/* NS_E_CLOSED (with the reason) when QEMU or the backend is gone. A backend gone while QEMU
 * still runs waits a few seconds for QEMU (the backend ends when QEMU disconnects on its way
 * out), so that a stopped enclave is named as such. */
ns_err ns_emu_poll(ns_emu *e) NS_MUST_CHECK;
/* Stops QEMU, then the backend; closes the heartbeat socket. */
void ns_emu_stop(ns_emu *e, int grace_ms);

#endif
