// Offline schema validation of every Kubernetes object under deploy/k8s,
// with the kubernetes-models package (the same JSON schemas the API server
// uses). Kustomization files are checked for the files they name; patch
// files (partial objects) are checked to target an object of the base.
//   node validate.mjs ../k8s
import fs from "node:fs";
import path from "node:path";
import yaml from "js-yaml";

const root = process.argv[2];
const files = [];
(function walk(dir) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p);
    else if (p.endsWith(".yaml")) files.push(p);
  }
})(root);

function modulePath(apiVersion) {
  if (apiVersion === "v1") return "kubernetes-models/v1";
  if (apiVersion.startsWith("cert-manager.io/")) {
    return "@kubernetes-models/cert-manager/" + apiVersion;
  }
  if (apiVersion.startsWith("monitoring.coreos.com/")) {
    return "@kubernetes-models/prometheus-operator/" + apiVersion;
  }
  return "kubernetes-models/" + apiVersion;
}

const patches = new Set();
const objects = [];
let failures = 0;
for (const file of files.filter((f) => path.basename(f) === "kustomization.yaml")) {
  const k = yaml.load(fs.readFileSync(file, "utf8"));
  const dir = path.dirname(file);
  for (const r of k.resources || []) {
    if (!fs.existsSync(path.join(dir, r))) {
      console.log(`FAIL ${file}: resource ${r} does not exist`); failures++;
    }
  }
  for (const p of k.patches || []) {
    const f = path.join(dir, p.path);
    if (!fs.existsSync(f)) { console.log(`FAIL ${file}: patch ${p.path} does not exist`); failures++; }
    patches.add(path.resolve(f));
  }
}
for (const file of files) {
  if (path.basename(file) === "kustomization.yaml") continue;
  for (const obj of yaml.loadAll(fs.readFileSync(file, "utf8"))) {
    if (!obj) continue;
    if (patches.has(path.resolve(file))) {
      objects.push({ file, obj, patch: true });
      continue;
    }
    try {
      const mod = await import(modulePath(obj.apiVersion));
      const Model = mod[obj.kind];
      if (!Model) throw new Error(`no schema for ${obj.apiVersion} ${obj.kind}`);
      new Model(obj).validate();
      console.log(`ok   ${file}: ${obj.kind}/${obj.metadata.name}`);
      objects.push({ file, obj, patch: false });
    } catch (e) {
      console.log(`FAIL ${file}: ${obj.kind}/${obj.metadata && obj.metadata.name}: ${e.message}`);
      failures++;
    }
  }
}
for (const { file, obj } of objects.filter((o) => o.patch)) {
  const target = objects.find((o) => !o.patch && o.obj.kind === obj.kind &&
                                     o.obj.metadata.name === obj.metadata.name);
  if (!target) { console.log(`FAIL ${file}: patch targets no ${obj.kind}/${obj.metadata.name}`); failures++; }
  else console.log(`ok   ${file}: patch of ${obj.kind}/${obj.metadata.name}`);
}
console.log(failures ? `${failures} failed` : "all objects valid");
process.exit(failures ? 1 : 0);
