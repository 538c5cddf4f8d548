#!/usr/bin/env bash
# The ECR API's own upload path (InitiateLayerUpload ... PutImage), repository policies,
# tags and DescribeRegistry, with the aws CLI; the result pulled with skopeo.
source "$(dirname "$0")/lib.sh"
start_berth
WORK="$(mktemp -d)"
REG="127.0.0.1:$BERTH_PORT"
arn=$(awsb ecr create-repository --repository-name api/app --tags Key=team,Value=core --query repository.repositoryArn --output text)

# A layer (a tar with one file) and a config, uploaded through the ECR API in two parts.
mkdir -p "$WORK/root" && echo "hello from a layer" > "$WORK/root/hello.txt"
tar -C "$WORK/root" -cf "$WORK/layer.tar" hello.txt
layer_digest="sha256:$(sha256sum "$WORK/layer.tar" | cut -d' ' -f1)"
layer_size=$(stat -c %s "$WORK/layer.tar")
half=$((layer_size / 2))
head -c "$half" "$WORK/layer.tar" > "$WORK/part1"; tail -c +$((half + 1)) "$WORK/layer.tar" > "$WORK/part2"
upload=$(awsb ecr initiate-layer-upload --repository-name api/app --query uploadId --output text)
last=$(awsb ecr upload-layer-part --repository-name api/app --upload-id "$upload" --part-first-byte 0 --part-last-byte $((half - 1)) --layer-part-blob "fileb://$WORK/part1" --query lastByteReceived --output text)
expect_eq "first part received" "$((half - 1))" "$last"
expect_error "a part that skips bytes" InvalidLayerPartException awsb ecr upload-layer-part --repository-name api/app --upload-id "$upload" --part-first-byte $((half + 5)) --part-last-byte $((layer_size + 4)) --layer-part-blob "fileb://$WORK/part2"
awsb ecr upload-layer-part --repository-name api/app --upload-id "$upload" --part-first-byte "$half" --part-last-byte $((layer_size - 1)) --layer-part-blob "fileb://$WORK/part2" >/dev/null
expect_eq "complete-layer-upload" "$layer_digest" "$(awsb ecr complete-layer-upload --repository-name api/app --upload-id "$upload" --layer-digests "$layer_digest" --query layerDigest --output text)"
expect_eq "layer available" "AVAILABLE" "$(awsb ecr batch-check-layer-availability --repository-name api/app --layer-digests "$layer_digest" --query 'layers[0].layerAvailability' --output text)"
expect_eq "missing layer reported" "MissingLayerDigest" "$(awsb ecr batch-check-layer-availability --repository-name api/app --layer-digests "sha256:$(printf '0%.0s' {1..64})" --query 'failures[0].failureCode' --output text)"
url=$(awsb ecr get-download-url-for-layer --repository-name api/app --layer-digest "$layer_digest" --query downloadUrl --output text)
expect_eq "download URL serves the layer" "$layer_digest" "sha256:$(curl -fsS "$url" | sha256sum | cut -d' ' -f1)"

# A wrong digest leaves nothing behind.
upload=$(awsb ecr initiate-layer-upload --repository-name api/app --query uploadId --output text)
awsb ecr upload-layer-part --repository-name api/app --upload-id "$upload" --part-first-byte 0 --part-last-byte $((half - 1)) --layer-part-blob "fileb://$WORK/part1" >/dev/null
other_digest="sha256:$(echo other | sha256sum | cut -d' ' -f1)"
expect_error "digest mismatch" InvalidLayerException awsb ecr complete-layer-upload --repository-name api/app --upload-id "$upload" --layer-digests "$other_digest"
expect_error "upload gone after mismatch" UploadNotFoundException awsb ecr complete-layer-upload --repository-name api/app --upload-id "$upload" --layer-digests "$other_digest"
expect_eq "nothing stored under the claimed digest" "MissingLayerDigest" "$(awsb ecr batch-check-layer-availability --repository-name api/app --layer-digests "$other_digest" --query 'failures[0].failureCode' --output text)"

# Config blob, then PutImage with an OCI manifest.
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["%s"]},"config":{"Cmd":["/hello.txt"]}}' "$layer_digest" > "$WORK/config.json"
config_digest="sha256:$(sha256sum "$WORK/config.json" | cut -d' ' -f1)"
upload=$(awsb ecr initiate-layer-upload --repository-name api/app --query uploadId --output text)
awsb ecr upload-layer-part --repository-name api/app --upload-id "$upload" --part-first-byte 0 --part-last-byte $(( $(stat -c %s "$WORK/config.json") - 1 )) --layer-part-blob "fileb://$WORK/config.json" >/dev/null
awsb ecr complete-layer-upload --repository-name api/app --upload-id "$upload" --layer-digests "$config_digest" >/dev/null
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}' \
  "$config_digest" "$(stat -c %s "$WORK/config.json")" "$layer_digest" "$layer_size" > "$WORK/manifest.json"
manifest_digest="sha256:$(sha256sum "$WORK/manifest.json" | cut -d' ' -f1)"
expect_eq "put-image" "$manifest_digest" "$(awsb ecr put-image --repository-name api/app --image-tag v1 --image-manifest "file://$WORK/manifest.json" --query image.imageId.imageDigest --output text)"
expect_error "put-image again" ImageAlreadyExistsException awsb ecr put-image --repository-name api/app --image-tag v1 --image-manifest "file://$WORK/manifest.json"
sed "s/$layer_digest/sha256:$(printf 'a%.0s' {1..64})/" "$WORK/manifest.json" > "$WORK/bad-manifest.json"
expect_error "put-image with a missing layer" LayersNotFoundException awsb ecr put-image --repository-name api/app --image-tag v2 --image-manifest "file://$WORK/bad-manifest.json"
expect_eq "skopeo sees the image" "$manifest_digest" "$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$REG/api/app:v1")"

# An image listed by an index cannot be deleted while the index stays.
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%d,"platform":{"architecture":"amd64","os":"linux"}}]}' \
  "$manifest_digest" "$(stat -c %s "$WORK/manifest.json")" > "$WORK/index.json"
expect_eq "push an index" "201" "$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/vnd.oci.image.index.v1+json' --data-binary "@$WORK/index.json" "http://$REG/v2/api/app/manifests/multi")"
expect_eq "child of an index is protected" "ImageReferencedByManifestList" "$(awsb ecr batch-delete-image --repository-name api/app --image-ids imageDigest="$manifest_digest" --query 'failures[0].failureCode' --output text)"
expect_eq "child still there" "$manifest_digest" "$(awsb ecr describe-images --repository-name api/app --image-ids imageTag=v1 --query 'imageDetails[0].imageDigest' --output text)"

# Repository policies.
policy='{"Version":"2012-10-17","Statement":[{"Sid":"pull","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":["ecr:BatchGetImage"]}]}'
awsb ecr set-repository-policy --repository-name api/app --policy-text "$policy" >/dev/null
expect_eq "get-repository-policy" "pull" "$(awsb ecr get-repository-policy --repository-name api/app --query policyText --output text | python3 -c 'import json,sys; print(json.load(sys.stdin)["Statement"][0]["Sid"])')"
expect_error "invalid policy" InvalidParameterException awsb ecr set-repository-policy --repository-name api/app --policy-text '{"Statement":"nope"}'
awsb ecr delete-repository-policy --repository-name api/app >/dev/null
expect_error "policy deleted" RepositoryPolicyNotFoundException awsb ecr get-repository-policy --repository-name api/app

# Tags and the registry.
awsb ecr tag-resource --resource-arn "$arn" --tags Key=env,Value=dev >/dev/null
awsb ecr untag-resource --resource-arn "$arn" --tag-keys team >/dev/null
expect_eq "tags" "env=dev" "$(awsb ecr list-tags-for-resource --resource-arn "$arn" --query 'tags[].[Key,Value]' --output text | tr '\t' '=')"
expect_eq "describe-registry" "000000000000" "$(awsb ecr describe-registry --query registryId --output text)"
expect_error "unknown repository" RepositoryNotFoundException awsb ecr list-images --repository-name nope
expect_error "not implemented" NotImplemented awsb ecr describe-pull-through-cache-rules

finish
