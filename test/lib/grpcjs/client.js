// test/lib/grpcjs/client.js: an nsign.v1.Signer client on @grpc/grpc-js (a real peer for
// test/it/test_sign_grpcjs.py; NODE_PATH from test/lib/grpcjs/install.sh).
// Reads a plan (JSON) on stdin:
//   {"addr": "127.0.0.1:PORT", "proto": "proto/nsign.proto", "server_name": "nsign-enclave",
//    "cert": PEM-or-null, "key": PEM-or-null, "server_cert": PEM-or-null,
//    "calls": [{"method": "Sign", "request": {"key_id": "k", "message": {"b64": "..."}}}, ...]}
// Without server_cert it first fetches the server's certificate with a TLS handshake of its own
// (ALPN h2, the client certificate if any), as the README's Python example does, and pins it:
// the channel trusts that certificate and nothing else (createSsl's rootCerts). The certificate
// each gRPC connection actually ended on is recorded by checkServerIdentity.
// Prints one JSON object: {"fetched_cert": b64 DER, "session_certs": [b64 DER...],
// "results": [{"method", "code", "details", "response"}]}; bytes fields are base64 strings.
"use strict";
const fs = require("fs");
const tls = require("tls");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

function fetchCert(host, port, plan) {
    return new Promise((resolve, reject) => {
        const opts = {host, port, servername: plan.server_name, ALPNProtocols: ["h2"],
                      rejectUnauthorized: false};
        if (plan.cert) {
            opts.cert = plan.cert;
            opts.key = plan.key;
        }
        const s = tls.connect(opts, () => {
            const c = s.getPeerCertificate();
            s.end();
            if (!c || !c.raw) reject(new Error("the server presented no certificate"));
            else resolve(c.raw);
        });
        s.setTimeout(10000, () => s.destroy(new Error("TLS handshake timed out")));
        s.on("error", reject);
    });
}

function toRequest(v) {
    if (v && typeof v === "object" && !Buffer.isBuffer(v)) {
        if (typeof v.b64 === "string" && Object.keys(v).length === 1) return Buffer.from(v.b64, "base64");
        const o = Array.isArray(v) ? [] : {};
        for (const k of Object.keys(v)) o[k] = toRequest(v[k]);
        return o;
    }
    return v;
}

function toJSON(v) {
    if (Buffer.isBuffer(v) || v instanceof Uint8Array) return Buffer.from(v).toString("base64");
    if (Array.isArray(v)) return v.map(toJSON);
    if (v && typeof v === "object") {
        const o = {};
        for (const k of Object.keys(v)) o[k] = toJSON(v[k]);
        return o;
    }
    return v;
}

async function main() {
    const plan = JSON.parse(fs.readFileSync(0, "utf8"));
    const [host, portText] = plan.addr.split(":");
    const port = Number(portText);
    const out = {grpc_js: require("@grpc/grpc-js/package.json").version, session_certs: [], results: []};
    let pinned;
    if (plan.server_cert) {
        pinned = Buffer.from(plan.server_cert);
    } else {
        const der = await fetchCert(host, port, plan);
        out.fetched_cert = der.toString("base64");
        const b64 = der.toString("base64").match(/.{1,64}/g).join("\n");
        pinned = Buffer.from("-----BEGIN CERTIFICATE-----\n" + b64 + "\n-----END CERTIFICATE-----\n");
    }
    const def = protoLoader.loadSync(plan.proto, {keepCase: true, longs: String, enums: String,
                                                  defaults: true, oneofs: true});
    const Signer = grpc.loadPackageDefinition(def).nsign.v1.Signer;
    const creds = grpc.credentials.createSsl(
        pinned, plan.key ? Buffer.from(plan.key) : null, plan.cert ? Buffer.from(plan.cert) : null,
        {
            checkServerIdentity: (hostname, cert) => {
                out.session_certs.push(cert.raw.toString("base64"));
                // The certificate is self-signed for the name nsign-enclave; the pin (rootCerts)
                // is what makes it trusted, the name is checked all the same.
                return tls.checkServerIdentity(plan.server_name, cert);
            },
        });
    const client = new Signer(plan.addr, creds, {"grpc.ssl_target_name_override": plan.server_name,
                                                 "grpc.default_authority": plan.server_name});
    for (const c of plan.calls) {
        const r = await new Promise((resolve) => {
            client[c.method](toRequest(c.request || {}), {deadline: Date.now() + 15000},
                (err, resp) => {
                    if (err) resolve({method: c.method, code: grpc.status[err.code] || String(err.code),
                                      details: err.details});
                    else resolve({method: c.method, code: "OK", response: toJSON(resp)});
                });
        });
        out.results.push(r);
    }
    client.close();
    process.stdout.write(JSON.stringify(out) + "\n");
}

main().catch((e) => {
    process.stderr.write("grpcjs client: " + (e && e.stack || e) + "\n");
    process.exit(2);
});
