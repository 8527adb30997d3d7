/*
 * test_emu: the emulator's liveness poll (ns_emu_poll) over stand-in children: a running pair is
 * fine; QEMU gone is named; a backend gone while QEMU is on its way out names both (the backend
 * ends when QEMU disconnects); a backend gone while QEMU keeps running names the backend; the
 * unix socket addresses of the vsock ports; QEMU's command line.
 */
#include <string.h>
#include <unistd.h>

#include "emu.h"
#include "t.h"

static void spawn(ns_supervise_child *c, const char *script)
{
    char *av[] = {"/bin/sh", "-c", (char *)script, NULL};
    CHECK_ERR(ns_supervise_spawn(c, av, NS_SPAWN_STDIN_NULL, -1), NS_OK, "spawn %s", script);
}

/* Lets a stand-in that exits at once do so (it stays unreaped until a poll). */
static void settle(void)
{
    usleep(300 * 1000);
}

int main(void)
{
    ns_emu e;
    char a[256];

    CHECK_ERR(ns_emu_addr(a, sizeof a, "/r/e.emu", 1, 7100), NS_OK, "addr: enclave side");
    CHECK(strcmp(a, "unix:/r/e.emu/enclave-7100.sock") == 0, "addr: enclave-PORT.sock (%s)", a);
    CHECK_ERR(ns_emu_addr(a, sizeof a, "/r/e.emu", 0, 7110), NS_OK, "addr: parent side");
    CHECK(strcmp(a, "unix:/r/e.emu/parent-7110.sock") == 0, "addr: parent-PORT.sock (%s)", a);

    /* QEMU's command line: the machine with nsign's vsock backend, the reset device, and the
     * virtio-mmio kicks synchronous (emu.c: an ioeventfd start-up kick can break virtio-nsm). */
    ns_emu_cfg c = {.self = "/b/nsign",
                    .qemu = "/q/qemu-system-x86_64",
                    .eif = "/e/n.eif",
                    .name = "n",
                    .cpu = "2",
                    .mem = "512",
                    .cid = "16",
                    .console_file = "/c.log",
                    .dir = "/r/e.emu",
                    .enclave_ports = {7100},
                    .n_enclave = 1};
    ns_emu_init(&e);
    CHECK_ERR(ns_emu_build(&e, &c), NS_OK, "build the argv");
    char line[4096] = "";
    for (int i = 0; e.argv_qemu[i] != NULL; i++) {
        strncat(line, " ", sizeof line - strlen(line) - 1);
        strncat(line, e.argv_qemu[i], sizeof line - strlen(line) - 1);
    }
    CHECK(strstr(line, " -M nitro-enclave,vsock=c0 ") != NULL &&
              strstr(line, " -chardev socket,id=c0,path=/r/e.emu/vhost.sock") != NULL,
          "qemu: the nitro-enclave machine on the backend's socket (%s)", line);
    CHECK(strstr(line, " -global virtio-mmio.ioeventfd=off ") != NULL,
          "qemu: virtio-mmio kicks without ioeventfd");
    CHECK(strstr(line, " -device i8042 ") != NULL && strstr(line, " -smp 2 -m 512M ") != NULL &&
              strstr(line, " -kernel /e/n.eif ") != NULL,
          "qemu: i8042, CPU_COUNT, MEMORY_MIB, the EIF");

    ns_emu_init(&e);
    spawn(&e.qemu, "sleep 30");
    spawn(&e.backend, "sleep 30");
    CHECK_ERR(ns_emu_poll(&e), NS_OK, "poll: both running");
    ns_emu_stop(&e, 1000);

    ns_emu_init(&e);
    spawn(&e.qemu, "exit 0");
    spawn(&e.backend, "sleep 30");
    settle();
    CHECK_ERR(ns_emu_poll(&e), NS_E_CLOSED, "poll: QEMU gone");
    CHECK(strstr(ns_err_msg(), "the enclave (QEMU) exited (exit 0): its console") != NULL,
          "poll: QEMU gone is named (%s)", ns_err_msg());
    ns_emu_stop(&e, 1000);

    /* The enclave stopped: the backend saw its front-end go and exited first; QEMU follows. */
    ns_emu_init(&e);
    spawn(&e.qemu, "sleep 1");
    spawn(&e.backend, "exit 0");
    settle();
    CHECK_ERR(ns_emu_poll(&e), NS_E_CLOSED, "poll: backend gone, QEMU on its way out");
    CHECK(strstr(ns_err_msg(), "the enclave (QEMU) exited (exit 0) and the vsock backend") != NULL,
          "poll: QEMU exiting just after its backend: both named, QEMU first (%s)", ns_err_msg());
    ns_emu_stop(&e, 1000);

    /* The backend died on its own: QEMU keeps running. */
    ns_emu_init(&e);
    spawn(&e.qemu, "sleep 60");
    spawn(&e.backend, "exit 3");
    settle();
    CHECK_ERR(ns_emu_poll(&e), NS_E_CLOSED, "poll: backend gone, QEMU running");
    CHECK(strstr(ns_err_msg(), "the vsock backend (nsign vhost-vsock) exited (exit 3): the "
                               "enclave lost its vsock") != NULL,
          "poll: a lost backend is named (%s)", ns_err_msg());
    ns_emu_stop(&e, 1000);
    T_DONE();
}
