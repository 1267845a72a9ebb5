#!/usr/bin/env bash
# Release step: render k8s/ with every image pinned to the digest its tag points at now, so what
# runs is exactly what was tested, whatever the tag points at later (docs/kubernetes.md).
#   k8s/pin-images.sh > release.yaml && kubectl apply -f release.yaml
# Digests are looked up in the registry with `crane digest REF` (go-containerregistry); set
# RESOLVE to another command that prints sha256:<hex> for a reference (e.g. a wrapper around
# `docker buildx imagetools inspect`). Needs kubectl (kustomize v5) and the registry.
set -euo pipefail
root="$(cd "$(dirname "$0")" && pwd)"
resolve="${RESOLVE:-crane digest}"
rendered="$(kubectl kustomize "$root")"
refs="$(printf '%s\n' "$rendered" | sed -n 's/^[ -]*image: *"\{0,1\}\([^" ]*\)"\{0,1\} *$/\1/p' | sort -u)"
for ref in $refs; do
  case "$ref" in *@sha256:*) continue ;; esac
  digest="$($resolve "$ref")"
  if ! [[ "$digest" =~ ^sha256:[0-9a-f]{64}$ ]]; then
    echo "pin-images: no digest for $ref (got: $digest)" >&2
    exit 1
  fi
  escaped="$(printf '%s' "$ref" | sed 's/[.[\*^$/|]/\\&/g')"
  rendered="$(printf '%s\n' "$rendered" | sed "s|^\([ -]*image: *\)\"\{0,1\}$escaped\"\{0,1\} *\$|\1$ref@$digest|")"
done
printf '%s\n' "$rendered"
