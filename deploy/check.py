"""Checks of the deployment files that schemas cannot make; run by deploy/validate.sh.

  check.py core RENDERED.yaml        prints the rendered resources that are not custom ones (see
                                     CUSTOM), for kubernetes-validate, which knows only core kinds
  check.py manifests RENDERED.yaml   custom resources against their CRD schemas, references
                                     between rendered resources, and pod security
  check.py dockerfile Dockerfile     stages, the runtime user and entrypoint, the Rust version

Prints one summary line and exits 0, or prints every problem and exits 1.
"""

import json
import pathlib
import re
import sys
import tomllib

import yaml

WORKLOADS = ("Deployment", "Job")
SERVICES = ("api", "router", "dispatcher")

# The custom resources the components use: (apiVersion, kind) -> the openAPIV3Schema of its
# CustomResourceDefinition, in deploy/schemas. Any other kind goes to kubernetes-validate, where
# an unknown one fails.
SCHEMAS = pathlib.Path(__file__).resolve().parent / "schemas"
CUSTOM = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com_v1_servicemonitor.json",
    ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh_v1alpha1_scaledobject.json",
}
RABBITMQ_MODES = ("QueueLength", "MessageRate")


def matches(selector, labels):
    """A Service's selector (a plain map): an empty one selects nothing here."""
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def selects(selector, labels):
    """A LabelSelector (matchLabels and matchExpressions): an empty one selects everything."""
    if not all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], e.get("values", [])
        if not {"In": lambda: labels.get(key) in values,
                "NotIn": lambda: labels.get(key) not in values,
                "Exists": lambda: key in labels,
                "DoesNotExist": lambda: key not in labels}[op]():
            return False
    return True


def is_custom(doc):
    return isinstance(doc, dict) and (doc.get("apiVersion"), doc.get("kind")) in CUSTOM


def core_documents(path):
    """The rendered text less the custom resources, each document as kustomize wrote it."""
    text = open(path, encoding="utf-8").read()
    documents = re.split(r"^---[ \t]*\n", text, flags=re.M)
    kept = [d for d in documents if d.strip() and not is_custom(yaml.safe_load(d))]
    print("---\n".join(kept), end="")
    return 0


def strict_schema(schema):
    """A CRD's structural schema as JSON Schema, as strict as the API server's field validation:
    unknown fields are errors (unless the schema keeps them), `nullable` allows null."""
    if not isinstance(schema, dict):
        return schema
    schema = dict(schema)
    if "properties" in schema:
        schema["properties"] = {k: strict_schema(v) for k, v in schema["properties"].items()}
        if "additionalProperties" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema["additionalProperties"] = False
    for key in ("items", "additionalProperties", "not"):
        if isinstance(schema.get(key), dict):
            schema[key] = strict_schema(schema[key])
    for key in ("anyOf", "allOf", "oneOf"):
        if key in schema:
            schema[key] = [strict_schema(s) for s in schema[key]]
    if schema.get("nullable") and isinstance(schema.get("type"), str):
        schema["type"] = [schema["type"], "null"]
    return schema


def check_custom(docs):
    """Problems of the custom resources against their CRD schemas."""
    import jsonschema

    errors = []
    versions = {kind: version for version, kind in CUSTOM}
    for d in docs:
        if not is_custom(d):
            if d.get("kind") in versions:
                errors.append(f"{d['kind']}/{(d.get('metadata') or {}).get('name')}: apiVersion "
                              f"{d.get('apiVersion')}, not {versions[d['kind']]}")
            continue
        where = f"{d['kind']}/{(d.get('metadata') or {}).get('name')}"
        if not isinstance((d.get("metadata") or {}).get("name"), str):
            errors.append(f"{where}: no metadata.name")
        schema = json.loads((SCHEMAS / CUSTOM[(d["apiVersion"], d["kind"])]).read_text(encoding="utf-8"))
        validator = jsonschema.Draft4Validator(strict_schema(schema))
        for e in sorted(validator.iter_errors(d), key=lambda e: [str(p) for p in e.absolute_path]):
            at = ".".join(str(p) for p in e.absolute_path) or "(top)"
            errors.append(f"{where}: {at}: {e.message}")
    return errors


def container_env(container, named):
    """The environment a container gets from `env` and the rendered ConfigMaps and Secrets of its
    `envFrom`, with a key "*" when some of it comes from one not rendered (a Secret made by hand)."""
    env = {}
    for source in container.get("envFrom", []):
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if key in source:
                found = named.get((kind, source[key]["name"]))
                if found is None:
                    env["*"] = None
                else:
                    env.update(found.get("data") or {})
                    env.update(found.get("stringData") or {})
    for var in container.get("env", []):
        env[var["name"]] = var.get("value")
    return env


def check_manifests(path):
    docs = [d for d in yaml.safe_load_all(open(path, encoding="utf-8")) if d]
    # The reference checks below take the shapes for granted: the custom resources' first.
    errors = check_custom(docs)
    if errors:
        print("\n".join(f"{path}: {e}" for e in errors))
        return 1
    notes = []
    named = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    namespaces = {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"}
    if len(namespaces) > 1:
        errors.append(f"resources spread over namespaces {sorted(map(str, namespaces))}")

    pods = {}  # Deployment name -> pod template
    templates = {}  # "Deployment/name" or "Job/name" -> pod template
    for d in docs:
        where = f"{d['kind']}/{d['metadata']['name']}"
        if d["metadata"].get("labels", {}).get("app.kubernetes.io/name") != "webhooks":
            errors.append(f"{where}: no label app.kubernetes.io/name=webhooks")
        if d["kind"] not in WORKLOADS:
            continue
        template = d["spec"]["template"]
        templates[where] = template
        spec = template["spec"]
        if d["kind"] == "Deployment":
            pods[d["metadata"]["name"]] = template
            selector = d["spec"]["selector"]["matchLabels"]
            if not matches(selector, template["metadata"].get("labels", {})):
                errors.append(f"{where}: selector {selector} does not match its pod labels")
        account = spec.get("serviceAccountName")
        if account and ("ServiceAccount", account) not in named:
            errors.append(f"{where}: ServiceAccount {account} is not defined")
        if spec.get("securityContext", {}).get("runAsNonRoot") is not True:
            errors.append(f"{where}: pod securityContext lacks runAsNonRoot: true")
        volumes = {v["name"] for v in spec.get("volumes", [])}
        for c in spec["containers"]:
            at = f"{where} container {c['name']}"
            sc = c.get("securityContext", {})
            if sc.get("allowPrivilegeEscalation") is not False:
                errors.append(f"{at}: allowPrivilegeEscalation is not false")
            if sc.get("readOnlyRootFilesystem") is not True:
                errors.append(f"{at}: readOnlyRootFilesystem is not true")
            if "ALL" not in sc.get("capabilities", {}).get("drop", []):
                errors.append(f"{at}: capabilities are not all dropped")
            for kind in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in c.get("resources", {}).get(kind, {}):
                        errors.append(f"{at}: no {resource} {kind}")
            for m in c.get("volumeMounts", []):
                if m["name"] not in volumes:
                    errors.append(f"{at}: mounts undefined volume {m['name']}")
            for source in c.get("envFrom", []):
                for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                    name = source.get(key, {}).get("name")
                    if name and (kind, name) not in named:
                        if kind == "ConfigMap":
                            errors.append(f"{at}: ConfigMap {name} is not defined")
                        elif f"Secret {name}" not in notes:
                            notes.append(f"Secret {name}")
            ports = {p.get("name") for p in c.get("ports", [])}
            ports |= {p["containerPort"] for p in c.get("ports", [])}
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                port = c.get(probe, {}).get("httpGet", {}).get("port")
                if port is not None and port not in ports:
                    errors.append(f"{at}: {probe} names undeclared port {port}")
            if d["kind"] == "Deployment" and c.get("args", [""])[0] in SERVICES:
                for probe in ("livenessProbe", "readinessProbe"):
                    if probe not in c:
                        errors.append(f"{at}: no {probe}")

    for a, ta in pods.items():
        for b, tb in pods.items():
            sel = named[("Deployment", a)]["spec"]["selector"]["matchLabels"]
            if a != b and matches(sel, tb["metadata"].get("labels", {})):
                errors.append(f"Deployment/{a}: selector also matches the pods of {b}")

    def ports_of(template):
        """A pod template's ports, by name and by number -> protocol."""
        found = {}
        for c in template["spec"]["containers"]:
            for p in c.get("ports", []):
                found[p["containerPort"]] = found[p.get("name")] = p.get("protocol", "TCP")
        found.pop(None, None)
        return found

    autoscaled = {}  # Deployment name -> the autoscalers scaling it
    for d in docs:
        where = f"{d['kind']}/{d['metadata']['name']}"
        if d["kind"] in ("HorizontalPodAutoscaler", "ScaledObject"):
            autoscaled.setdefault(d["spec"]["scaleTargetRef"]["name"], []).append(where)
    for deployment, scalers in autoscaled.items():
        if len(scalers) > 1:
            errors.append(f"Deployment/{deployment}: scaled by {' and '.join(scalers)}, which fight "
                          "(a ScaledObject makes its own HorizontalPodAutoscaler: delete the other)")

    for d in docs:
        where = f"{d['kind']}/{d['metadata']['name']}"
        if d["kind"] == "Service":
            # Checked against the Deployments it selects: a Job's pods serve nothing.
            targets = [t for t in pods.values() if matches(d["spec"].get("selector"), t["metadata"]["labels"])]
            if not targets:
                errors.append(f"{where}: selector matches no Deployment's pods")
            for port in d["spec"]["ports"]:
                target = port.get("targetPort", port["port"])
                for t in targets:
                    if target not in ports_of(t):
                        errors.append(f"{where}: targetPort {target} is not a port of its pods")
        elif d["kind"] == "ServiceMonitor":
            selector = d["spec"]["selector"]
            services = [s for s in docs if s["kind"] == "Service"
                        and selects(selector, s["metadata"].get("labels", {}))]
            if not selector or not services:
                errors.append(f"{where}: selector {selector} matches no Service's labels")
            for endpoint in d["spec"]["endpoints"]:
                if "port" not in endpoint:
                    errors.append(f"{where}: an endpoint names no port (a port name of the Service)")
                    continue
                for s in services:
                    if endpoint["port"] not in {p.get("name") for p in s["spec"]["ports"]}:
                        errors.append(f"{where}: endpoint port {endpoint['port']} is not a port name "
                                      f"of Service/{s['metadata']['name']}")
                if not endpoint.get("path", "/metrics").startswith("/"):
                    errors.append(f"{where}: endpoint path {endpoint['path']} is not absolute")
        elif d["kind"] == "ScaledObject":
            spec, ref = d["spec"], d["spec"]["scaleTargetRef"]
            kind, name = ref.get("kind", "Deployment"), ref["name"]
            if kind != "Deployment" or ref.get("apiVersion", "apps/v1") != "apps/v1" or name not in pods:
                errors.append(f"{where}: scales {kind}/{name}, which is not defined")
                continue
            if named[("Deployment", name)]["spec"].get("replicas") is not None:
                errors.append(f"{where}: its Deployment also fixes replicas, which every apply resets")
            low, high = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
            if low > high:
                errors.append(f"{where}: minReplicaCount {low} exceeds maxReplicaCount {high}")
            containers = pods[name]["spec"]["containers"]
            source = ref.get("envSourceContainerName", containers[0]["name"])
            container = next((c for c in containers if c["name"] == source), None)
            if container is None:
                errors.append(f"{where}: envSourceContainerName {source} is not a container of {name}")
                continue
            env = container_env(container, named)
            rabbitmq = [t for t in spec["triggers"] if t["type"] == "rabbitmq"]
            if not rabbitmq:
                errors.append(f"{where}: no rabbitmq trigger")
            for t in rabbitmq:
                meta = t["metadata"]
                for key in ("queueName", "mode", "value"):
                    if key not in meta:
                        errors.append(f"{where}: its rabbitmq trigger lacks metadata.{key}")
                # The queue the dispatchers consume: `<WEBHOOKS_BUS__PREFIX>.dispatch`.
                prefix = env.get("WEBHOOKS_BUS__PREFIX") or "webhooks"
                if "queueName" in meta and meta["queueName"] != f"{prefix}.dispatch":
                    errors.append(f"{where}: queueName {meta['queueName']} is not {prefix}.dispatch, "
                                  f"the queue of WEBHOOKS_BUS__PREFIX={prefix}")
                if "mode" in meta and meta["mode"] not in RABBITMQ_MODES:
                    errors.append(f"{where}: mode {meta['mode']} is none of {', '.join(RABBITMQ_MODES)}")
                try:
                    if "value" in meta and float(meta["value"]) <= 0:
                        raise ValueError
                except ValueError:
                    errors.append(f"{where}: value {meta['value']!r} is not a positive number")
                if "host" in meta:
                    errors.append(f"{where}: the broker's credentials in metadata.host; use "
                                  "hostFromEnv or an authenticationRef")
                elif "hostFromEnv" in meta:
                    var = meta["hostFromEnv"]
                    if var not in env and "*" not in env:
                        errors.append(f"{where}: hostFromEnv {var} is not in the environment of "
                                      f"container {source} of Deployment/{name}")
                elif "authenticationRef" not in t:
                    errors.append(f"{where}: its rabbitmq trigger has neither metadata.hostFromEnv "
                                  "nor an authenticationRef")
        elif d["kind"] == "NetworkPolicy":
            # Named ports of ingress rules are the selected pods' own: each must declare them.
            # (Those of egress rules are the destinations', not rendered here.)
            selector = d["spec"]["podSelector"]
            selected = {w: t for w, t in templates.items()
                        if selects(selector, t["metadata"].get("labels", {}))}
            if not selected:
                errors.append(f"{where}: podSelector selects no Deployment's or Job's pods")
            for rule in d["spec"].get("ingress") or []:
                for port in rule.get("ports") or []:
                    number = port.get("port")
                    if not isinstance(number, str):
                        continue
                    for w, t in selected.items():
                        declared = ports_of(t)
                        if number not in declared:
                            errors.append(f"{where}: port {number} is not a port of the pods of {w}")
                        elif declared[number] != port.get("protocol", "TCP"):
                            errors.append(f"{where}: port {number} is {declared[number]} on the pods of {w}")
        elif d["kind"] == "PodDisruptionBudget":
            selector = d["spec"]["selector"].get("matchLabels")
            hits = [n for n, t in pods.items() if matches(selector, t["metadata"]["labels"])]
            if len(hits) != 1:
                errors.append(f"{where}: selector matches {len(hits)} Deployments, not 1")
        elif d["kind"] == "HorizontalPodAutoscaler":
            ref = d["spec"]["scaleTargetRef"]
            if ref["name"] not in pods or ref["kind"] != "Deployment":
                errors.append(f"{where}: scales {ref['kind']}/{ref['name']}, which is not defined")
            elif named[("Deployment", ref["name"])]["spec"].get("replicas") is not None:
                errors.append(f"{where}: its Deployment also fixes replicas, which every apply resets")

    if errors:
        print("\n".join(f"{path}: {e}" for e in errors))
        return 1
    summary = "references and pod security checked"
    custom = sorted({d["kind"] for d in docs if is_custom(d)})
    if custom:
        summary = f"{', '.join(custom)} valid against their CRD schemas (strict); " + summary
    if notes:
        summary += "; expects to exist: " + ", ".join(notes)
    print(summary)
    return 0


def check_dockerfile(path):
    import dockerfile

    commands = dockerfile.parse_file(path)
    errors, stages, final, count = [], [], None, 0
    known = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT",
             "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}
    for c in commands:
        if c.cmd.upper() not in known:
            errors.append(f"line {c.start_line}: unknown instruction {c.cmd}")
        elif c.cmd.upper() == "FROM":
            final, count = {"image": c.value[0]}, count + 1
            if len(c.value) == 3 and c.value[1].upper() == "AS":
                stages.append(c.value[2])
        elif final is None and c.cmd.upper() != "ARG":
            errors.append(f"line {c.start_line}: {c.cmd} before FROM")
        elif final is not None:
            for flag in c.flags:
                if flag.startswith("--from=") and flag[7:] not in stages:
                    errors.append(f"line {c.start_line}: {flag} names no earlier stage")
            final[c.cmd.upper()] = c
    if final is None:
        return print(f"{path}: no FROM") or 1

    user = final.get("USER")
    if user is None or user.value[0].split(":")[0] in ("0", "root"):
        errors.append("the runtime stage does not run as a non-root user")
    entry = final.get("ENTRYPOINT")
    if entry is None or not entry.json or entry.value[0] != "/usr/local/bin/webhooks":
        errors.append('the runtime stage lacks ENTRYPOINT ["/usr/local/bin/webhooks"]')
    if "EXPOSE" not in final or "8000" not in final["EXPOSE"].value:
        errors.append("the runtime stage does not EXPOSE 8000")

    # The builder's toolchain must be the workspace's rust-version.
    cargo = tomllib.loads(pathlib.Path("Cargo.toml").read_text(encoding="utf-8"))
    wanted = cargo["workspace"]["package"]["rust-version"]
    rust = [c.value[0] for c in commands if c.cmd.upper() == "FROM" and c.value[0].startswith("rust:")]
    if not any(re.match(rf"rust:{re.escape(wanted)}(\.\d+)?-", image) for image in rust):
        errors.append(f"no builder stage on rust:{wanted} (the workspace's rust-version); found {rust}")

    if errors:
        print("\n".join(f"{path}: {e}" for e in errors))
        return 1
    print(f"{count} stages, runtime {final['image']} as user {user.value[0]}")
    return 0


def main(what, path):
    try:
        checks = {"core": core_documents, "manifests": check_manifests, "dockerfile": check_dockerfile}
        return checks[what](path)
    except (KeyError, TypeError, AttributeError) as error:
        # Malformed resources: the schema validation says where.
        print(f"{path}: cannot check references in malformed resources ({error!r})")
        return 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
