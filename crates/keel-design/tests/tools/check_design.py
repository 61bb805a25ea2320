"""Validate a `keel design` output directory with real tools.

usage: check_design.py DESIGN_DIR SAMPLES_JSON SPEC_TOML

- openapi.json is valid OpenAPI 3.1 (openapi-spec-validator);
- every example in openapi.json satisfies the schema it stands in (patterns,
  lengths, bounds);
- every API sample (the ones ARCHITECTURE.md shows) validates against the OpenAPI
  schemas of its operation and status: response bodies always, request bodies for
  successful calls;
- docker-compose.yml and every k8s/*.yaml parse as YAML and are valid of their kind
  (structural asserts); the Dockerfile is multi-stage, non-root, with a health check.
Exits 1 with every problem listed.
"""
import json
import pathlib
import sys
import tomllib

import yaml
from jsonschema import Draft202012Validator, FormatChecker
from openapi_spec_validator import validate

design = pathlib.Path(sys.argv[1])
samples = json.loads(pathlib.Path(sys.argv[2]).read_text())
spec_source = pathlib.Path(sys.argv[3]).read_text()
problems = []


def check(cond, msg):
    if not cond:
        problems.append(msg)


# --- OpenAPI 3.1 ---
doc = json.loads((design / "openapi.json").read_text())
check(doc.get("openapi", "").startswith("3.1"), "openapi.json is not 3.1")
try:
    validate(doc)
except Exception as e:  # noqa: BLE001
    problems.append(f"openapi.json is invalid: {e}")


def resolve(obj):
    while isinstance(obj, dict) and "$ref" in obj and obj["$ref"].startswith("#/"):
        node = doc
        for part in obj["$ref"][2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        obj = node
    return obj


def validator(schema):
    return Draft202012Validator({**schema, "components": doc["components"]}, format_checker=FormatChecker())


validated = 0
for s in samples:
    op = doc["paths"].get(s["route"], {}).get(s["method"].lower())
    if op is None:
        problems.append(f"{s['method']} {s['route']}: not in openapi.json")
        continue
    resp = resolve(op["responses"].get(str(s["status"])))
    if resp is None:
        problems.append(f"{s['method']} {s['route']}: status {s['status']} not documented")
        continue
    if s["response"] is None:
        check(not resp.get("content"), f"{s['method']} {s['route']} {s['status']}: documented with a body, sample has none")
    else:
        content = resp.get("content", {})
        ct = s["content_type"]
        if ct not in content:
            problems.append(f"{s['method']} {s['route']} {s['status']}: no {ct} content documented")
        else:
            for err in validator(content[ct]["schema"]).iter_errors(s["response"]):
                problems.append(f"{s['method']} {s['route']} {s['status']} response: {err.message} at {list(err.absolute_path)}")
            validated += 1
    if s["request"] is not None and s["status"] < 400:
        schema = op["requestBody"]["content"]["application/json"]["schema"]
        for err in validator(schema).iter_errors(s["request"]):
            problems.append(f"{s['method']} {s['route']} request: {err.message} at {list(err.absolute_path)}")
        validated += 1
check(validated > 0, "no sample was validated")

# --- every example in openapi.json satisfies the schema it stands in ---
examples_checked = 0


def check_examples(node, where):
    global examples_checked
    if isinstance(node, dict):
        if isinstance(node.get("examples"), list) and ("type" in node or "properties" in node or "$ref" in node):
            schema = {k: v for k, v in node.items() if k != "examples"}
            for ex in node["examples"]:
                for err in validator(schema).iter_errors(ex):
                    problems.append(f"{where}: example {json.dumps(ex)} breaks its own schema: {err.message}")
                examples_checked += 1
        if "example" in node and isinstance(node.get("schema"), dict):
            for err in validator(node["schema"]).iter_errors(node["example"]):
                problems.append(f"{where}: example {json.dumps(node['example'])} breaks its schema: {err.message}")
            examples_checked += 1
        for k, v in node.items():
            check_examples(v, f"{where}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            check_examples(v, f"{where}/{i}")


check_examples(doc, "#")
check(examples_checked > 0, "openapi.json has no examples to check")

# --- docker-compose.yml ---
compose = yaml.safe_load((design / "docker-compose.yml").read_text())
services = compose.get("services", {})
for name in ["keel", "postgres", "redis", "nats"]:
    svc = services.get(name)
    check(isinstance(svc, dict), f"compose: no service {name}")
    if isinstance(svc, dict):
        check(isinstance(svc.get("healthcheck", {}).get("test"), list), f"compose: {name} has no healthcheck test")
        check("image" in svc or "build" in svc, f"compose: {name} has no image or build")
keel = services.get("keel", {})
for dep in ["postgres", "redis", "nats"]:
    check(keel.get("depends_on", {}).get(dep, {}).get("condition") == "service_healthy", f"compose: keel does not wait for {dep} to be healthy")

# --- Kubernetes ---
kinds = {}
for f in sorted((design / "k8s").glob("*.yaml")):
    for m in yaml.safe_load_all(f.read_text()):
        check(isinstance(m, dict) and "apiVersion" in m and "kind" in m and m.get("metadata", {}).get("name"), f"{f.name}: not a Kubernetes object")
        kinds[m["kind"]] = m
for kind, api in [("Deployment", "apps/v1"), ("Service", "v1"), ("HorizontalPodAutoscaler", "autoscaling/v2"), ("PodDisruptionBudget", "policy/v1"), ("ConfigMap", "v1")]:
    check(kinds.get(kind, {}).get("apiVersion") == api, f"k8s: no {kind} ({api})")
dep = kinds.get("Deployment", {})
labels = dep.get("spec", {}).get("selector", {}).get("matchLabels", {})
check(labels and labels == dep["spec"]["template"]["metadata"]["labels"], "k8s: Deployment selector does not match its pod labels")
pod = dep.get("spec", {}).get("template", {}).get("spec", {})
check(pod.get("securityContext", {}).get("runAsNonRoot") is True, "k8s: pod may run as root")
for c in pod.get("containers", []):
    check(c.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/healthz", "k8s: no liveness probe on /healthz")
    check(c.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/readyz", "k8s: no readiness probe on /readyz")
    limits = c.get("resources", {}).get("limits", {})
    check("cpu" in limits and "memory" in limits, "k8s: container without cpu/memory limits")
volumes = {v["name"] for v in pod.get("volumes", [])}
for c in pod.get("containers", []):
    for vm in c.get("volumeMounts", []):
        check(vm["name"] in volumes, f"k8s: volumeMount {vm['name']} has no volume")
svc = kinds.get("Service", {})
check(svc.get("spec", {}).get("selector") == labels, "k8s: Service selector does not match the Deployment")
hpa = kinds.get("HorizontalPodAutoscaler", {}).get("spec", {})
check(hpa.get("scaleTargetRef", {}).get("name") == dep.get("metadata", {}).get("name"), "k8s: HPA targets another Deployment")
check(1 <= hpa.get("minReplicas", 0) <= hpa.get("maxReplicas", 0), "k8s: HPA replica bounds")
pdb = kinds.get("PodDisruptionBudget", {}).get("spec", {})
check(pdb.get("selector", {}).get("matchLabels") == labels, "k8s: PDB selector does not match")
check(("minAvailable" in pdb) != ("maxUnavailable" in pdb), "k8s: PDB needs exactly one of minAvailable/maxUnavailable")
cm = kinds.get("ConfigMap", {}).get("data", {}).get("keel.toml", "")
check(tomllib.loads(cm) == tomllib.loads(spec_source), "k8s: ConfigMap keel.toml differs from the spec")

# --- Dockerfile ---
docker = (design / "Dockerfile").read_text().splitlines()
froms = [l for l in docker if l.startswith("FROM ")]
check(len(froms) >= 2, "Dockerfile is not multi-stage")
users = [l for l in docker if l.startswith("USER ")]
check(users and users[-1].split()[1].split(":")[0] not in ("root", "0"), "Dockerfile runs as root")
check(any(l.startswith("HEALTHCHECK ") for l in docker), "Dockerfile has no HEALTHCHECK")

if problems:
    print("\n".join(problems))
    sys.exit(1)
print(f"design ok: openapi 3.1 valid, {validated} samples validated, compose and {len(kinds)} k8s kinds valid")
