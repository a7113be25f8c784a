// Validates prometheus-operator objects (ServiceMonitor, PodMonitor) against the schemas of
// their CRDs, as compiled into @kubernetes-models/prometheus-operator (installed into
// .tools by scripts/setup-cluster-tools.sh). Reads a JSON array of objects on stdin and
// prints a JSON array of problems (empty: all valid). Used by check.py.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const models = join(root, ".tools", "node_modules", "@kubernetes-models", "prometheus-operator", "monitoring.coreos.com", "v1");
const objects = JSON.parse(readFileSync(0, "utf8"));
const problems = [];
for (const obj of objects) {
  const where = `${obj.kind}/${obj.metadata?.name}`;
  let model;
  try {
    model = await import(pathToFileURL(join(models, `${obj.kind}.js`)).href);
  } catch (e) {
    problems.push(`${where}: no schema for ${obj.apiVersion} ${obj.kind} (${e.message.split("\n")[0]})`);
    continue;
  }
  try {
    new model[obj.kind](obj).validate();
  } catch (e) {
    problems.push(`${where}: ${e.message}`);
  }
}
process.stdout.write(JSON.stringify(problems));
