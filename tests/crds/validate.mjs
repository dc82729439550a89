// Validates custom resources against their CRDs' OpenAPI schemas (the @kubernetes-models
// packages compile each CRD's schema into a validate function).
// stdin: a JSON array of objects; stdout: a JSON array, one entry per object: null when valid,
// else the reason. Exit 0 whenever it could answer, 2 on unreadable input.
import { readFileSync } from "node:fs";

const PACKAGES = {
  "gateway.networking.k8s.io": "@kubernetes-models/gateway-api",
  "cert-manager.io": "@kubernetes-models/cert-manager",
  "acme.cert-manager.io": "@kubernetes-models/cert-manager",
  "bitnami.com": "@kubernetes-models/sealed-secrets",
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
};

async function modelOf(apiVersion, kind) {
  const [group, version] = String(apiVersion).split("/");
  const pkg = PACKAGES[group];
  if (!pkg || !version || !/^[A-Za-z]+$/.test(String(kind))) {
    return null;
  }
  try {
    const module = await import(`${pkg}/${group}/${version}/${kind}`);
    return module[kind] ?? null;
  } catch {
    return null;
  }
}

async function problemOf(object) {
  const Model = await modelOf(object?.apiVersion, object?.kind);
  if (Model === null) {
    return `no schema for kind ${object?.kind} of ${object?.apiVersion}`;
  }
  try {
    new Model(object).validate();
    return null;
  } catch (error) {
    return String(error.message);
  }
}

let objects;
try {
  objects = JSON.parse(readFileSync(0, "utf8"));
  if (!Array.isArray(objects)) throw new Error("expected a JSON array of objects");
} catch (error) {
  process.stderr.write(`validate.mjs: ${error.message}\n`);
  process.exit(2);
}
const problems = [];
for (const object of objects) {
  problems.push(await problemOf(object));
}
process.stdout.write(JSON.stringify(problems));
