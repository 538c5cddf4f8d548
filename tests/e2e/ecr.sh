#!/usr/bin/env bash
# The registry with real clients: skopeo pushes and pulls a locally built image; the
# aws CLI manages repositories and images; auth is enforced with get-login-password.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/images.sh"
start_berth
WORK="$(mktemp -d)"
make_image "$WORK/layout" v1 one
make_image "$WORK/layout" v2 two
REG="127.0.0.1:$BERTH_PORT"
SK=(skopeo --insecure-policy)

uri=$(awsb ecr create-repository --repository-name team/web --query repository.repositoryUri --output text)
expect_eq "repositoryUri uses a name this host resolves" "localhost:$BERTH_PORT/team/web" "$uri"
expect_error "duplicate repository" RepositoryAlreadyExistsException awsb ecr create-repository --repository-name team/web
expect_error "invalid repository name" InvalidParameterException awsb ecr create-repository --repository-name Bad_Name

# Push with skopeo, pull back, compare digests.
"${SK[@]}" copy --dest-tls-verify=false "oci:$WORK/layout:v1" "docker://$REG/team/web:v1" >/dev/null
"${SK[@]}" copy --dest-tls-verify=false "oci:$WORK/layout:v2" "docker://$REG/team/web:v2" >/dev/null
"${SK[@]}" copy --src-tls-verify=false "docker://$REG/team/web:v1" "oci:$WORK/back:v1" >/dev/null
src_digest=$("${SK[@]}" inspect --format '{{.Digest}}' "oci:$WORK/layout:v1")
pushed_digest=$("${SK[@]}" inspect --tls-verify=false --format '{{.Digest}}' "docker://$REG/team/web:v1")
back_digest=$("${SK[@]}" inspect --format '{{.Digest}}' "oci:$WORK/back:v1")
expect_eq "pushed digest equals source" "$src_digest" "$pushed_digest"
expect_eq "pulled digest equals source" "$src_digest" "$back_digest"
expect_eq "layers equal after the round trip" "$("${SK[@]}" inspect --format '{{.Layers}}' "oci:$WORK/layout:v1")" "$("${SK[@]}" inspect --format '{{.Layers}}' "oci:$WORK/back:v1")"
expect_eq "tags via the registry" "v1,v2" "$(curl -fsS "http://$REG/v2/team/web/tags/list" | python3 -c 'import json,sys; print(",".join(json.load(sys.stdin)["tags"]))')"
expect_eq "push to a missing repository is NAME_UNKNOWN" "1" "$("${SK[@]}" copy --dest-tls-verify=false "oci:$WORK/layout:v1" "docker://$REG/nope:v1" 2>&1 | grep -c 'NAME_UNKNOWN\|name unknown' || true)"

# The ECR API sees the same images.
expect_eq "describe-images tags" "v1" "$(awsb ecr describe-images --repository-name team/web --image-ids imageTag=v1 --query 'imageDetails[0].imageTags[0]' --output text)"
expect_eq "describe-images digest" "$src_digest" "$(awsb ecr describe-images --repository-name team/web --image-ids imageTag=v1 --query 'imageDetails[0].imageDigest' --output text)"
expect_eq "describe-images media type" "application/vnd.oci.image.manifest.v1+json" "$(awsb ecr describe-images --repository-name team/web --image-ids imageTag=v1 --query 'imageDetails[0].imageManifestMediaType' --output text)"
expect_eq "list-images" "2" "$(awsb ecr list-images --repository-name team/web --query 'length(imageIds)' --output json)"
expect_eq "batch-get-image manifest" "2" "$(awsb ecr batch-get-image --repository-name team/web --image-ids imageTag=v2 --query 'images[0].imageManifest' --output text | python3 -c 'import json,sys; print(json.load(sys.stdin)["schemaVersion"])')"
expect_eq "batch-get-image missing" "ImageNotFound" "$(awsb ecr batch-get-image --repository-name team/web --image-ids imageTag=v9 --query 'failures[0].failureCode' --output text)"
expect_error "describe-images missing" ImageNotFoundException awsb ecr describe-images --repository-name team/web --image-ids imageTag=v9

# Tag immutability is enforced on push.
awsb ecr put-image-tag-mutability --repository-name team/web --image-tag-mutability IMMUTABLE >/dev/null
expect_eq "immutable tag cannot move" "1" "$("${SK[@]}" copy --dest-tls-verify=false "oci:$WORK/layout:v2" "docker://$REG/team/web:v1" 2>&1 | grep -c 'TAG_INVALID\|cannot be overwritten' || true)"
awsb ecr put-image-tag-mutability --repository-name team/web --image-tag-mutability MUTABLE >/dev/null

# Deleting.
expect_eq "batch-delete-image" "v2" "$(awsb ecr batch-delete-image --repository-name team/web --image-ids imageTag=v2 --query 'imageIds[0].imageTag' --output text)"
expect_eq "deleted tag is gone from the registry" "v1" "$(curl -fsS "http://$REG/v2/team/web/tags/list" | python3 -c 'import json,sys; print(",".join(json.load(sys.stdin)["tags"]))')"
expect_error "non-empty repository" RepositoryNotEmptyException awsb ecr delete-repository --repository-name team/web
awsb ecr create-repository --repository-name scratch >/dev/null

# Everything acknowledged survives kill -9.
kill9_berth
start_berth
REG="127.0.0.1:$BERTH_PORT"
after=$("${SK[@]}" inspect --tls-verify=false --format '{{.Digest}}' "docker://$REG/team/web:v1")
expect_eq "image after kill -9" "$src_digest" "$after"
expect_eq "delete-repository --force" "team/web" "$(awsb ecr delete-repository --repository-name team/web --force --query repository.repositoryName --output text)"
expect_eq "repositories left" "scratch" "$(awsb ecr describe-repositories --query 'repositories[].repositoryName' --output text)"
stop_berth

# Auth enforced: the registry wants get-login-password.
BERTH_DATA="$(mktemp -d)"
start_berth --enforce-auth
REG="127.0.0.1:$BERTH_PORT"
awsb ecr create-repository --repository-name secure >/dev/null
expect_eq "anonymous push refused" "1" "$("${SK[@]}" copy --dest-tls-verify=false "oci:$WORK/layout:v1" "docker://$REG/secure:v1" 2>&1 | grep -ci 'unauthorized\|authentication required' || true)"
awsb ecr get-login-password | skopeo login --tls-verify=false --authfile "$WORK/auth.json" --username AWS --password-stdin "$REG" >/dev/null
"${SK[@]}" copy --authfile "$WORK/auth.json" --dest-tls-verify=false "oci:$WORK/layout:v1" "docker://$REG/secure:v1" >/dev/null
expect_eq "push with get-login-password" "$src_digest" "$("${SK[@]}" inspect --authfile "$WORK/auth.json" --tls-verify=false --format '{{.Digest}}' "docker://$REG/secure:v1")"
expect_eq "wrong password refused" "401" "$(curl -s -o /dev/null -w '%{http_code}' -u AWS:forged "http://$REG/v2/")"
# Tokens are signed with a random key made once per data directory, not the secret key.
token=$(awsb ecr get-login-password)
expect_eq "a genuine token is accepted" "200" "$(curl -s -o /dev/null -w '%{http_code}' -u "AWS:$token" "http://$REG/v2/")"
forged=$(python3 -c 'import hmac, hashlib, time; p = "000000000000-%d" % (time.time() + 3600); print(p + "." + hmac.new(b"test", p.encode(), hashlib.sha256).hexdigest())')
expect_eq "a token forged with the default secret key is refused" "401" "$(curl -s -o /dev/null -w '%{http_code}' -u "AWS:$forged" "http://$REG/v2/")"
expect_eq "the token key is the owner's only" "600" "$(stat -c %a "$BERTH_DATA/registry-token-key")"
stop_berth
start_berth --enforce-auth
expect_eq "a token stays valid across a restart (the key is kept)" "200" "$(curl -s -o /dev/null -w '%{http_code}' -u "AWS:$token" "http://$REG/v2/")"

finish
