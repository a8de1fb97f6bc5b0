"""Checks of the deployment files that schemas cannot make; run by deploy/validate.sh.

  check.py manifests RENDERED.yaml   references between rendered resources, and pod security
  check.py dockerfile Dockerfile     stages, the runtime user and entrypoint, the Rust version

Prints one summary line and exits 0, or prints every problem and exits 1.
"""

import pathlib
import re
import sys
import tomllib

import yaml

WORKLOADS = ("Deployment", "Job")
SERVICES = ("api", "router", "dispatcher")


def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_manifests(path):
    docs = [d for d in yaml.safe_load_all(open(path, encoding="utf-8")) if d]
    errors, notes = [], []
    named = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    namespaces = {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"}
    if len(namespaces) > 1:
        errors.append(f"resources spread over namespaces {sorted(map(str, namespaces))}")

    pods = {}  # Deployment name -> pod template
    for d in docs:
        where = f"{d['kind']}/{d['metadata']['name']}"
        if d["metadata"].get("labels", {}).get("app.kubernetes.io/name") != "webhooks":
            errors.append(f"{where}: no label app.kubernetes.io/name=webhooks")
        if d["kind"] not in WORKLOADS:
            continue
        template = d["spec"]["template"]
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

    for d in docs:
        where = f"{d['kind']}/{d['metadata']['name']}"
        if d["kind"] == "Service":
            targets = [t for t in pods.values() if matches(d["spec"].get("selector"), t["metadata"]["labels"])]
            if not targets:
                errors.append(f"{where}: selector matches no Deployment's pods")
            for port in d["spec"]["ports"]:
                target = port.get("targetPort", port["port"])
                for t in targets:
                    declared = {p.get("name") for c in t["spec"]["containers"] for p in c.get("ports", [])}
                    declared |= {p["containerPort"] for c in t["spec"]["containers"] for p in c.get("ports", [])}
                    if target not in declared:
                        errors.append(f"{where}: targetPort {target} is not a port of its pods")
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
        return {"manifests": check_manifests, "dockerfile": check_dockerfile}[what](path)
    except (KeyError, TypeError, AttributeError) as error:
        # Malformed resources: the schema validation says where.
        print(f"{path}: cannot check references in malformed resources ({error!r})")
        return 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
