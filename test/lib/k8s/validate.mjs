// validate.mjs: validates Kubernetes manifests offline against the OpenAPI schemas of the
// Kubernetes version pinned by package-lock.json (kubernetes-models 5.1.0, generated from
// Kubernetes v1.27.1, validating with ajv). Usage: node validate.mjs NODE_MODULES FILE.yaml...
// Prints one JSON line per document: {"file","kind","apiVersion","ok","error"}; exits 1 if any
// document fails or is of a kind it does not know (an unknown kind fails, it never passes).
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const [modules, ...files] = process.argv.slice(2);
const require = createRequire(path.join(modules, "noop.js"));
const yaml = require("js-yaml");
const GROUPS = new Set(["v1", "apps/v1", "policy/v1"]);
let failed = 0;
for (const file of files) {
  for (const doc of yaml.loadAll(fs.readFileSync(file, "utf8"))) {
    if (doc == null) continue;
    const out = { file, kind: doc.kind, apiVersion: doc.apiVersion, ok: false, error: null };
    try {
      if (!GROUPS.has(doc.apiVersion) || !/^[A-Za-z]+$/.test(doc.kind || "")) {
        throw new Error("not a validated kind: " + doc.apiVersion + " " + doc.kind);
      }
      const js = path.join(modules, "kubernetes-models", doc.apiVersion, doc.kind + ".js");
      const mod = await import(pathToFileURL(js).href);
      const Model = mod[doc.kind] || mod.default;
      new Model(doc).validate();
      out.ok = true;
    } catch (e) {
      out.error = String(e && e.message ? e.message : e).slice(0, 2000);
      failed++;
    }
    console.log(JSON.stringify(out));
  }
}
process.exit(failed ? 1 : 0);
