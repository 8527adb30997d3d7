/*
 * test_runcfg: run-enclave's configuration through an injected getenv: the seed's defaults, every
 * variable honoured, the emulator's unix sockets, the configuration document, and malformed
 * values rejected with the variable named in the error text.
 */
#include <stdio.h>
#include <string.h>

#include "runcfg.h"
#include "t.h"

#define URIS "AGE_KEY_S3_URI", "s3://b/age.enc", "KEY_SHARES_S3_URI", "s3://b/shares.age"

static int str_is(const char *got, const char *want, const char *what)
{
    if (strcmp(got, want) != 0) {
        printf("#   %s: got '%s' want '%s'\n", what, got, want);
        return 0;
    }
    return 1;
}

static ns_runcfg c; /* large: not on the stack */

static void test_defaults(void)
{
    static const char *const env[] = {URIS, NULL};
    t_env = env;
    CHECK_ERR(ns_runcfg_load(&c, t_getenv, NULL, 0), NS_OK, "defaults load");
    CHECK(str_is(c.eif, "target/sign-service.enclave.eif", "eif") &&
              str_is(c.name, "sign-service-enclave", "name") &&
              str_is(c.console_file, "target/sign-service-enclave-console.log", "console") &&
              str_is(c.run_dir, "/run/nsign", "run_dir") &&
              str_is(c.nitro_name, "nitro-cli", "nitro"),
          "defaults: EIF_PATH, ENCLAVE_NAME, CONSOLE_FILE, NSIGN_RUN_DIR, NITRO_CLI");
    CHECK(str_is(c.cid, "16", "cid") && str_is(c.cpu, "2", "cpu") && str_is(c.mem, "512", "mem") &&
              c.debug == 0 && c.console_stream == 0 && c.emu == 0,
          "defaults: cid 16, 2 vCPUs, 512 MiB, production mode, no emulator");
    CHECK(str_is(c.creds_push, "vsock:16:7100", "creds") &&
              str_is(c.age_push, "vsock:16:7101", "age") &&
              str_is(c.shares_push, "vsock:16:7102", "shares") &&
              str_is(c.config_push, "vsock:16:7103", "config"),
          "defaults: the four pushes to the enclave's CID, ports 7100-7103");
    CHECK(str_is(c.grpc_listen, "tcp:0.0.0.0:50051", "grpc listen") &&
              str_is(c.grpc_connect, "vsock:16:50051", "grpc connect") && c.egress == 1 &&
              str_is(c.egress_listen, "vsock:any:8080", "egress listen") &&
              str_is(c.egress_connect, "tcp:127.0.0.1:8080", "egress connect"),
          "defaults: ingress 0.0.0.0:50051 -> vsock:16:50051, egress vsock:any:8080 -> 127.0.0.1");
    CHECK(c.kms == 1 && str_is(c.kms_listen, "vsock:any:5000", "kms listen") &&
              str_is(c.kms_connect, "tcp:kms.us-east-1.amazonaws.com:443", "kms connect") &&
              str_is(c.kms_allow, "kms.us-east-1.amazonaws.com:443", "kms allow"),
          "defaults: the KMS proxy to kms.us-east-1, allow-listed");
    CHECK(str_is(c.config, "{\"region\":\"us-east-1\"}", "config doc"),
          "defaults: the configuration document holds the region only");
    CHECK(c.readiness_s == 60 && c.watch_s == 10 && c.ready_max_age_s == 15,
          "defaults: readiness 5+20+35 s, watch every 10 s, ready max age 15 s");
    CHECK(c.log_peer_cid == 16, "defaults: only the enclave's CID may write the log channels");
    CHECK(c.drain_s == 30 && c.drain_delay_s == 0,
          "defaults: drain 30 s on SIGTERM, no delay before the enclave drains");
    CHECK(str_is(c.log_listen, "vsock:any:7110", "log") &&
              str_is(c.audit_listen, "vsock:any:7111", "audit") &&
              str_is(c.metrics_listen, "tcp:127.0.0.1:9100", "metrics listen") &&
              str_is(c.metrics_connect, "vsock:16:7112", "metrics connect") &&
              str_is(c.ready_listen, "tcp:127.0.0.1:9101", "ready") &&
              str_is(c.log_file, "", "log file") &&
              str_is(c.audit_file, "/run/nsign/sign-service-enclave.audit.jsonl", "audit file"),
          "defaults: observability on 7110/7111/7112, readiness on 9101, the audit file");
}

/* Under systemd with StateDirectory=nsign the audit trail defaults to /var/lib/nsign. */
static void test_state_directory(void)
{
    static const char *const env[] = {URIS, "STATE_DIRECTORY", "/var/lib/nsign:/var/lib/other",
                                      NULL};
    t_env = env;
    CHECK_ERR(ns_runcfg_load(&c, t_getenv, NULL, 0), NS_OK, "STATE_DIRECTORY load");
    CHECK(str_is(c.audit_file, "/var/lib/nsign/sign-service-enclave.audit.jsonl", "audit file"),
          "STATE_DIRECTORY: the audit trail defaults under the unit's state directory");
    static const char *const env2[] = {
        URIS,         "STATE_DIRECTORY", "/var/lib/nsign", "AUDIT_LOG_FILE",
        "/x/a.jsonl", "KMS_KEY_ID",      "alias/k",        NULL};
    t_env = env2;
    CHECK_ERR(ns_runcfg_load(&c, t_getenv, NULL, 0), NS_OK, "AUDIT_LOG_FILE load");
    CHECK(str_is(c.audit_file, "/x/a.jsonl", "audit file") &&
              str_is(c.kms_key_id, "alias/k", "kms key id"),
          "AUDIT_LOG_FILE wins over STATE_DIRECTORY; KMS_KEY_ID kept for --preflight");
}

static void test_every_variable(void)
{
    static const char *const env[] = {URIS,
                                      "EIF_PATH",
                                      "/x/e.eif",
                                      "ENCLAVE_NAME",
                                      "enc1",
                                      "CONSOLE_FILE",
                                      "/x/console",
                                      "NSIGN_RUN_DIR",
                                      "/x/run",
                                      "NITRO_CLI",
                                      "/opt/nitro-cli",
                                      "ENCLAVE_CID",
                                      "21",
                                      "CPU_COUNT",
                                      "4",
                                      "MEMORY_MIB",
                                      "2048",
                                      "DEBUG_MODE",
                                      "1",
                                      "CONSOLE_STREAM_ENABLED",
                                      "false",
                                      "AWS_CREDS_VSOCK_PORT",
                                      "9100",
                                      "AGE_KEY_VSOCK_PORT",
                                      "9101",
                                      "KEY_SHARES_VSOCK_PORT",
                                      "9102",
                                      "CONFIG_VSOCK_PORT",
                                      "9103",
                                      "HOST_GRPC_PORT",
                                      "6000",
                                      "VSOCK_PORT",
                                      "6001",
                                      "HOST_EGRESS_ENABLED",
                                      "0",
                                      "HOST_EGRESS_TARGET_HOST",
                                      "::1",
                                      "HOST_EGRESS_TARGET_PORT",
                                      "8443",
                                      "HOST_EGRESS_VSOCK_PORT",
                                      "8081",
                                      "KMS_PROXY_ENABLE",
                                      "true",
                                      "KMS_PROXY_PORT",
                                      "5001",
                                      "KMS_PROXY_DEST_HOST",
                                      "kms-fips.eu-west-1.amazonaws.com",
                                      "KMS_PROXY_DEST_PORT",
                                      "8443",
                                      "AWS_REGION",
                                      "eu-west-1",
                                      "KMS_KEY_ID",
                                      "alias/k\"1",
                                      "AWS_ENDPOINT_URL_KMS",
                                      "https://kms.example:8443",
                                      "READINESS_SLEEP_SECONDS",
                                      "1",
                                      "VSOC_TRANSFER_RETRIES",
                                      "2",
                                      "NSIGN_HOST_WATCH_SECONDS",
                                      "0",
                                      "NSIGN_HOST_DRAIN_SECONDS",
                                      "0",
                                      "NSIGN_HOST_DRAIN_DELAY_SECONDS",
                                      "7",
                                      "ENCLAVE_LOG_VSOCK_PORT",
                                      "9110",
                                      "AUDIT_VSOCK_PORT",
                                      "9111",
                                      "METRICS_VSOCK_PORT",
                                      "9112",
                                      "NSIGN_HOST_METRICS_LISTEN",
                                      "tcp:127.0.0.1:19100",
                                      "NSIGN_HOST_READY_LISTEN",
                                      "none",
                                      "ENCLAVE_LOG_FILE",
                                      "/x/enclave.log",
                                      "AUDIT_LOG_FILE",
                                      "/x/audit.jsonl",
                                      "READY_MAX_AGE_SECONDS",
                                      "30",
                                      "NSIGN_HOST_LOG_PEER_CID",
                                      "1",
                                      NULL};
    t_env = env;
    CHECK_ERR(ns_runcfg_load(&c, t_getenv, NULL, 0), NS_OK, "every variable: load");
    CHECK(str_is(c.eif, "/x/e.eif", "eif") && str_is(c.name, "enc1", "name") &&
              str_is(c.console_file, "/x/console", "console") &&
              str_is(c.run_dir, "/x/run", "run dir") &&
              str_is(c.nitro_name, "/opt/nitro-cli", "nitro"),
          "every variable: paths and names");
    CHECK(str_is(c.cid, "21", "cid") && str_is(c.cpu, "4", "cpu") && str_is(c.mem, "2048", "mem") &&
              c.debug == 1 && c.console_stream == 0,
          "every variable: resources, DEBUG_MODE=1, CONSOLE_STREAM_ENABLED=false");
    CHECK(str_is(c.creds_push, "vsock:21:9100", "creds") &&
              str_is(c.age_push, "vsock:21:9101", "age") &&
              str_is(c.shares_push, "vsock:21:9102", "shares") &&
              str_is(c.config_push, "vsock:21:9103", "config"),
          "every variable: push ports at the configured CID");
    CHECK(str_is(c.grpc_listen, "tcp:0.0.0.0:6000", "grpc") &&
              str_is(c.grpc_connect, "vsock:21:6001", "grpc connect") && c.egress == 0 &&
              str_is(c.egress_listen, "vsock:any:8081", "egress listen") &&
              str_is(c.egress_connect, "tcp:[::1]:8443", "egress connect"),
          "every variable: ingress ports; egress off, its IPv6 target bracketed");
    CHECK(c.kms == 1 && str_is(c.kms_listen, "vsock:any:5001", "kms listen") &&
              str_is(c.kms_connect, "tcp:kms-fips.eu-west-1.amazonaws.com:8443", "kms") &&
              str_is(c.kms_allow, "kms-fips.eu-west-1.amazonaws.com:8443", "allow"),
          "every variable: the KMS proxy's target and allow-list entry");
    CHECK(str_is(c.config,
                 "{\"region\":\"eu-west-1\",\"kms_key_id\":\"alias/k\\\"1\","
                 "\"kms_endpoint\":\"https://kms.example:8443\"}",
                 "config doc"),
          "every variable: the configuration document, JSON-escaped");
    CHECK(c.readiness_s == 38 && c.watch_s == 0, "every variable: readiness 1+2+35, no watch");
    CHECK(c.drain_s == 0 && c.drain_delay_s == 7, "every variable: no drain, a 7 s delay");
    CHECK(str_is(c.log_listen, "vsock:any:9110", "log") &&
              str_is(c.audit_listen, "vsock:any:9111", "audit") &&
              str_is(c.metrics_listen, "tcp:127.0.0.1:19100", "metrics") &&
              str_is(c.metrics_connect, "vsock:21:9112", "metrics connect") &&
              str_is(c.ready_listen, "", "ready none") &&
              str_is(c.log_file, "/x/enclave.log", "log file") &&
              str_is(c.audit_file, "/x/audit.jsonl", "audit file") && c.ready_max_age_s == 30 &&
              c.log_peer_cid == 1,
          "every variable: observability ports, readiness off, files");

    static const char *const env2[] = {URIS,
                                       "READINESS_TIMEOUT_SECONDS",
                                       "7",
                                       "NSIGN_HOST_CREDS_ADDR",
                                       "unix:/t/c.sock",
                                       "NSIGN_HOST_AGE_KEY_ADDR",
                                       "unix:/t/a.sock",
                                       "NSIGN_HOST_SHARES_ADDR",
                                       "tcp:127.0.0.1:1",
                                       "NSIGN_HOST_CONFIG_ADDR",
                                       "none",
                                       "NSIGN_HOST_GRPC_LISTEN",
                                       "tcp:[::1]:7000",
                                       "NSIGN_HOST_GRPC_CONNECT",
                                       "unix:/t/g.sock",
                                       "NSIGN_HOST_EGRESS_LISTEN",
                                       "unix:/t/e.sock",
                                       "NSIGN_HOST_EGRESS_CONNECT",
                                       "tcp:127.0.0.1:2",
                                       "NSIGN_HOST_KMS_PROXY_LISTEN",
                                       "unix:/t/k.sock",
                                       "NSIGN_HOST_KMS_PROXY_CONNECT",
                                       "tcp:[::1]:3",
                                       "NSIGN_HOST_LOG_LISTEN",
                                       "none",
                                       "NSIGN_HOST_AUDIT_LISTEN",
                                       "unix:/t/au.sock",
                                       "NSIGN_HOST_METRICS_CONNECT",
                                       "none",
                                       "DEBUG_MODE",
                                       "true",
                                       NULL};
    t_env = env2;
    CHECK_ERR(ns_runcfg_load(&c, t_getenv, NULL, 0), NS_OK, "address overrides: load");
    CHECK(c.readiness_s == 7 && str_is(c.creds_push, "unix:/t/c.sock", "creds") &&
              str_is(c.age_push, "unix:/t/a.sock", "age") &&
              str_is(c.shares_push, "tcp:127.0.0.1:1", "shares") &&
              str_is(c.config_push, "", "config none"),
          "address overrides: the pushes; NSIGN_HOST_CONFIG_ADDR=none sends no configuration");
    CHECK(str_is(c.grpc_listen, "tcp:[::1]:7000", "grpc") &&
              str_is(c.grpc_connect, "unix:/t/g.sock", "grpc connect") &&
              str_is(c.egress_listen, "unix:/t/e.sock", "egress") &&
              str_is(c.egress_connect, "tcp:127.0.0.1:2", "egress connect") &&
              str_is(c.kms_listen, "unix:/t/k.sock", "kms"),
          "address overrides: the bridges");
    CHECK(str_is(c.kms_connect, "tcp:[::1]:3", "kms connect") &&
              str_is(c.kms_allow, "[::1]:3", "kms allow"),
          "address overrides: the KMS allow-list entry follows NSIGN_HOST_KMS_PROXY_CONNECT");
    CHECK(str_is(c.log_listen, "", "log none") && str_is(c.audit_listen, "unix:/t/au.sock", "a") &&
              str_is(c.metrics_connect, "", "metrics none"),
          "address overrides: observability, \"none\" disables");
    CHECK(c.debug == 1 && c.console_stream == 1, "CONSOLE_STREAM_ENABLED defaults to DEBUG_MODE");

    static const char *const env3[] = {URIS, "NSIGN_HOST_KMS_PROXY_CONNECT", "unix:/t/kms", NULL};
    t_env = env3;
    CHECK_ERR(ns_runcfg_load(&c, t_getenv, NULL, 0), NS_OK, "KMS proxy to unix: load");
    CHECK(str_is(c.kms_allow, "", "allow"), "KMS proxy to a unix socket: no allow-list entry");
}

static void test_emulator(void)
{
    static const char *const env[] = {URIS, "NSIGN_RUN_DIR", "/r", "ENCLAVE_NAME", "e", NULL};
    static const char *const env_on[] = {URIS, "NSIGN_RUN_DIR",
                                         "/r", "ENCLAVE_NAME",
                                         "e",  "NSIGN_EMULATOR",
                                         "1",  "NSIGN_EMU_BOOT_TIMEOUT_SECONDS",
                                         "42", NULL};
    t_env = env;
    CHECK_ERR(ns_runcfg_load(&c, t_getenv, NULL, 1), NS_OK, "--emulator: load");
    CHECK(c.emu == 1 && str_is(c.emu_dir, "/r/e.emu", "dir") &&
              c.emu_boot_s == NS_RUNCFG_EMU_BOOT_TIMEOUT_S,
          "--emulator: the socket folder NSIGN_RUN_DIR/NAME.emu, the default boot timeout");
    CHECK(str_is(c.creds_push, "unix:/r/e.emu/enclave-7100.sock", "creds") &&
              str_is(c.grpc_connect, "unix:/r/e.emu/enclave-50051.sock", "grpc") &&
              str_is(c.kms_listen, "unix:/r/e.emu/parent-5000.sock", "kms") &&
              str_is(c.log_listen, "unix:/r/e.emu/parent-7110.sock", "log"),
          "--emulator: every vsock port becomes a unix socket (no AF_VSOCK on the host)");
    CHECK(c.emu_cfg.n_enclave == 6 && c.emu_cfg.n_parent == 4 &&
              c.emu_cfg.enclave_ports[0] == 7100 && c.emu_cfg.parent_ports[0] == 8080,
          "--emulator: the ports are registered for the backend (6 enclave, 4 parent)");
    t_env = env_on;
    CHECK_ERR(ns_runcfg_load(&c, t_getenv, NULL, 0), NS_OK, "NSIGN_EMULATOR=1: load");
    CHECK(c.emu == 1 && c.emu_boot_s == 42,
          "NSIGN_EMULATOR=1 is --emulator; NSIGN_EMU_BOOT_TIMEOUT_SECONDS honoured");
}

static void test_common(void)
{
    ns_runcfg_common cc;
    static const char *const env[] = {"ENCLAVE_NAME", "", "NSIGN_EMULATOR", "yes", NULL};
    static const char *const env2[] = {
        "ENCLAVE_NAME", "a", "NSIGN_RUN_DIR", "/d", "NITRO_CLI", "/n", "NSIGN_EMULATOR", "1", NULL};
    static const char *const bad[] = {"ENCLAVE_NAME", "a/b", NULL};
    t_env = env;
    CHECK_ERR(ns_runcfg_common_load(&cc, t_getenv, NULL), NS_OK, "common: defaults");
    CHECK(str_is(cc.name, "sign-service-enclave", "name") &&
              str_is(cc.run_dir, "/run/nsign", "d") && str_is(cc.nitro_name, "nitro-cli", "n") &&
              cc.emu == 0,
          "common: an empty ENCLAVE_NAME is the default; NSIGN_EMULATOR other than 1 is off");
    t_env = env2;
    CHECK_ERR(ns_runcfg_common_load(&cc, t_getenv, NULL), NS_OK, "common: set");
    CHECK(str_is(cc.name, "a", "name") && str_is(cc.run_dir, "/d", "d") &&
              str_is(cc.nitro_name, "/n", "n") && cc.emu == 1,
          "common: every variable");
    t_env = bad;
    CHECK_ERR(ns_runcfg_common_load(&cc, t_getenv, NULL), NS_E_USAGE, "common: a '/' in name");
    CHECK(strstr(ns_err_msg(), "ENCLAVE_NAME must not contain '/'") != NULL,
          "common: the error names ENCLAVE_NAME");
}

static void test_malformed(void)
{
    static char longv[NS_RUNCFG_STR + 8];
    memset(longv, 'a', sizeof longv - 1);
    longv[sizeof longv - 1] = '\0';
    static char longkey[NS_RUNCFG_DOC_MAX];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    static const struct {
        const char *name, *value, *want;
        ns_err code;
    } bad[] = {
        {"ENCLAVE_CID", "2", "ENCLAVE_CID=2: CIDs 0-3 are reserved", NS_E_USAGE},
        {"ENCLAVE_CID", "x", "ENCLAVE_CID=x: want a number up to 4294967294", NS_E_USAGE},
        {"ENCLAVE_CID", "4294967295", "ENCLAVE_CID=4294967295: want a number", NS_E_USAGE},
        {"CPU_COUNT", "0", "CPU_COUNT and MEMORY_MIB must be positive", NS_E_USAGE},
        {"CPU_COUNT", "1025", "CPU_COUNT=1025: want a number up to 1024", NS_E_USAGE},
        {"MEMORY_MIB", "-1", "MEMORY_MIB=-1: want a number", NS_E_USAGE},
        {"DEBUG_MODE", "yes", "DEBUG_MODE=yes: want 1 or 0", NS_E_USAGE},
        {"CONSOLE_STREAM_ENABLED", "2", "CONSOLE_STREAM_ENABLED=2: want 1 or 0", NS_E_USAGE},
        {"ENCLAVE_NAME", "a/b", "ENCLAVE_NAME must not contain '/'", NS_E_USAGE},
        {"ENCLAVE_NAME", "a\nb", "ENCLAVE_NAME must not contain '/'", NS_E_USAGE},
        {"EIF_PATH", longv, "EIF_PATH: longer than 511 bytes", NS_E_TOO_BIG},
        {"AGE_KEY_S3_URI", "http://b/k", "must start with s3://", NS_E_USAGE},
        {"HOST_GRPC_PORT", "65536", "HOST_GRPC_PORT=65536: want a number up to 65535", NS_E_USAGE},
        {"AWS_CREDS_VSOCK_PORT", "4294967296", "AWS_CREDS_VSOCK_PORT=4294967296", NS_E_USAGE},
        {"NSIGN_HOST_CREDS_ADDR", "vsock:x", "NSIGN_HOST_CREDS_ADDR", NS_E_USAGE},
        {"NSIGN_HOST_GRPC_LISTEN", "tcp:1.2.3.4", "NSIGN_HOST_GRPC_LISTEN", NS_E_USAGE},
        {"NSIGN_HOST_LOG_LISTEN", "udp:1", "NSIGN_HOST_LOG_LISTEN", NS_E_USAGE},
        {"AWS_REGION", "eu-west-1\"", "AWS_REGION=eu-west-1\": not a region name", NS_E_USAGE},
        {"KMS_PROXY_DEST_PORT", "70000", "KMS_PROXY_DEST_PORT=70000", NS_E_USAGE},
        {"KMS_KEY_ID", longkey, "the enclave configuration (AWS_REGION, KMS_KEY_ID", NS_E_USAGE},
        {"READINESS_TIMEOUT_SECONDS", "0", "READINESS_TIMEOUT_SECONDS must be positive",
         NS_E_USAGE},
        {"NSIGN_HOST_WATCH_SECONDS", "86401", "NSIGN_HOST_WATCH_SECONDS=86401", NS_E_USAGE},
        {"NSIGN_HOST_DRAIN_SECONDS", "3601", "NSIGN_HOST_DRAIN_SECONDS=3601", NS_E_USAGE},
        {"NSIGN_HOST_DRAIN_DELAY_SECONDS", "-1", "NSIGN_HOST_DRAIN_DELAY_SECONDS=-1", NS_E_USAGE},
        {"READY_MAX_AGE_SECONDS", "0", "READY_MAX_AGE_SECONDS must be positive", NS_E_USAGE},
        {"HOST_EGRESS_ENABLED", "on", "HOST_EGRESS_ENABLED=on: want 1 or 0", NS_E_USAGE},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *env[] = {bad[i].name, bad[i].value, URIS, NULL};
        t_env = env;
        ns_err e = ns_runcfg_load(&c, t_getenv, NULL, 0);
        int ok = e == bad[i].code && strstr(ns_err_msg(), bad[i].want) != NULL;
        CHECK(ok, "malformed %s (case %zu): %s, the error says '%s'", bad[i].name, i,
              ns_err_name(bad[i].code), bad[i].want);
        if (!ok) {
            printf("#   got %s: %s\n", ns_err_name(e), ns_err_msg());
        }
    }
    static const char *const none[] = {NULL};
    t_env = none;
    CHECK_ERR(ns_runcfg_load(&c, t_getenv, NULL, 0), NS_E_USAGE, "S3 URIs missing");
    CHECK(strstr(ns_err_msg(), "AGE_KEY_S3_URI and KEY_SHARES_S3_URI must be set") != NULL,
          "S3 URIs missing: the error names both and gives an example");
    static const char *const many[] = {URIS, "NSIGN_EMULATOR", "1", NULL};
    t_env = many;
    CHECK_ERR(ns_runcfg_load(&c, t_getenv, NULL, 0), NS_OK, "the emulator's ports fit its table");
}

int main(void)
{
    test_defaults();
    test_every_variable();
    test_state_directory();
    test_emulator();
    test_common();
    test_malformed();
    T_DONE();
}
