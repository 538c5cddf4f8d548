#!/usr/bin/env bash
# buildah pulls from and pushes to Berth's registry, in OCI and Docker schema 2 formats.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/images.sh"
start_berth
WORK="$(mktemp -d)"
REG="127.0.0.1:$BERTH_PORT"
BH=(buildah --root "$WORK/storage" --runroot "$WORK/run" --storage-driver vfs)
trap 'stop_berth; "${BH[@]}" rmi --all >/dev/null 2>&1 || true; rm -rf "$WORK" 2>/dev/null || true' EXIT

make_image "$WORK/layout" v1 buildah
awsb ecr create-repository --repository-name bh/app >/dev/null
skopeo --insecure-policy copy --dest-tls-verify=false "oci:$WORK/layout:v1" "docker://$REG/bh/app:v1" >/dev/null

"${BH[@]}" pull --quiet --tls-verify=false "$REG/bh/app:v1" >/dev/null
expect_eq "buildah pulled the image" "1" "$("${BH[@]}" images --noheading "$REG/bh/app:v1" | wc -l)"
"${BH[@]}" tag "$REG/bh/app:v1" "$REG/bh/app:oci" "$REG/bh/app:docker"
"${BH[@]}" push --quiet --tls-verify=false --format oci "$REG/bh/app:oci"
"${BH[@]}" push --quiet --tls-verify=false --format v2s2 "$REG/bh/app:docker"
expect_eq "OCI push" "application/vnd.oci.image.manifest.v1+json" "$(awsb ecr describe-images --repository-name bh/app --image-ids imageTag=oci --query 'imageDetails[0].imageManifestMediaType' --output text)"
expect_eq "Docker schema 2 push" "application/vnd.docker.distribution.manifest.v2+json" "$(awsb ecr describe-images --repository-name bh/app --image-ids imageTag=docker --query 'imageDetails[0].imageManifestMediaType' --output text)"
expect_eq "tags" "docker,oci,v1" "$(curl -fsS "http://$REG/v2/bh/app/tags/list" | python3 -c 'import json,sys; print(",".join(json.load(sys.stdin)["tags"]))')"
"${BH[@]}" rmi --all >/dev/null
"${BH[@]}" pull --quiet --tls-verify=false "$REG/bh/app:docker" >/dev/null
expect_eq "pull of the Docker-format push" "1" "$("${BH[@]}" images --noheading "$REG/bh/app:docker" | wc -l)"
finish
