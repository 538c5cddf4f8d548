#!/usr/bin/env bash
# Lifecycle policies end to end: skopeo pushes four distinct images, a policy that keeps
# the two newest 'v' images really expires the two older ones, and garbage collection
# removes their blobs from disk, while blobs another repository still uses stay.
# Berth runs with --registry-gc-grace 0 so collection follows expiry at once.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/images.sh"
start_berth --registry-gc-grace 0
WORK="$(mktemp -d)"
REG="127.0.0.1:$BERTH_PORT"
SK=(skopeo --insecure-policy)
for t in v1 v2 v3 v4 v5; do make_image "$WORK/layout" "$t" "lifecycle $t"; done

digest_of() { "${SK[@]}" inspect --format '{{.Digest}}' "oci:$WORK/layout:$1"; }
# Config and layer digests of a local image.
blobs_of() {
  "${SK[@]}" inspect --raw "oci:$WORK/layout:$1" \
    | python3 -c 'import json,sys; m=json.load(sys.stdin); print(" ".join([m["config"]["digest"]]+[l["digest"] for l in m["layers"]]))'
}
blob_file() { local hex="${1#sha256:}"; echo "$BERTH_DATA/registry/blobs/sha256/${hex:0:2}/$hex"; }
head_status() { curl -s -o /dev/null -w '%{http_code}' -I "http://$REG/v2/$1/blobs/$2"; }
push() { "${SK[@]}" copy --dest-tls-verify=false "oci:$WORK/layout:$1" "docker://$REG/$2:$1" >/dev/null; }
tags_of() { awsb ecr list-images --repository-name "$1" --query 'imageIds[].imageTag' --output text | tr '\t' '\n' | sort | xargs; }
tags_are() { [ "$(tags_of "$1")" == "$2" ]; }
all_absent() { local d; for d in "$@"; do [ ! -e "$(blob_file "$d")" ] || return 1; done; }

awsb ecr create-repository --repository-name lc/app >/dev/null
awsb ecr create-repository --repository-name lc/other >/dev/null
for t in v1 v2 v3 v4; do push "$t" lc/app; done
# Another repository holds v1 too: its blobs must survive v1's expiry from lc/app.
push v1 lc/other
expect_eq "four images pushed" "v1 v2 v3 v4" "$(tags_of lc/app)"

POLICY='{"rules":[{"rulePriority":1,"description":"keep the two newest v images","selection":{"tagStatus":"tagged","tagPrefixList":["v"],"countType":"imageCountMoreThan","countNumber":2},"action":{"type":"expire"}}]}'

# Errors before any policy exists.
expect_error "get-lifecycle-policy without a policy" LifecyclePolicyNotFoundException awsb ecr get-lifecycle-policy --repository-name lc/app
expect_error "delete-lifecycle-policy without a policy" LifecyclePolicyNotFoundException awsb ecr delete-lifecycle-policy --repository-name lc/app
expect_error "preview of a missing policy" LifecyclePolicyNotFoundException awsb ecr start-lifecycle-policy-preview --repository-name lc/app
expect_error "no preview yet" LifecyclePolicyPreviewNotFoundException awsb ecr get-lifecycle-policy-preview --repository-name lc/app
expect_error "policy for a missing repository" RepositoryNotFoundException awsb ecr put-lifecycle-policy --repository-name lc/nope --lifecycle-policy-text "$POLICY"
expect_error "policy that is not JSON" InvalidParameterException awsb ecr put-lifecycle-policy --repository-name lc/app \
  --lifecycle-policy-text '{"rules": [ this is not JSON at all, though it is long enough to pass the length check of the ECR model ]}'
expect_error "tagged rule without a prefix list" InvalidParameterException awsb ecr put-lifecycle-policy --repository-name lc/app \
  --lifecycle-policy-text '{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged","countType":"imageCountMoreThan","countNumber":2},"action":{"type":"expire"}}]}'
expect_error "an 'any' rule that is not last" InvalidParameterException awsb ecr put-lifecycle-policy --repository-name lc/app \
  --lifecycle-policy-text '{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":2},"action":{"type":"expire"}},{"rulePriority":2,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}'
expect_error "duplicate rule priorities" InvalidParameterException awsb ecr put-lifecycle-policy --repository-name lc/app \
  --lifecycle-policy-text '{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":2},"action":{"type":"expire"}},{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}'
expect_error "sinceImagePushed without countUnit" InvalidParameterException awsb ecr put-lifecycle-policy --repository-name lc/app \
  --lifecycle-policy-text '{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countNumber":2},"action":{"type":"expire"}}]}'
expect_error "archive transitions are not implemented" NotImplemented awsb ecr put-lifecycle-policy --repository-name lc/app \
  --lifecycle-policy-text '{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":30},"action":{"type":"transition","targetStorageClass":"archive"}}]}'
expect_eq "refused policies changed nothing" "v1 v2 v3 v4" "$(tags_of lc/app)"

# Preview the policy before putting it.
expect_eq "preview completes" COMPLETE "$(awsb ecr start-lifecycle-policy-preview --repository-name lc/app --lifecycle-policy-text "$POLICY" --query status --output text)"
expect_eq "preview: two expiring" 2 "$(awsb ecr get-lifecycle-policy-preview --repository-name lc/app --query summary.expiringImageTotalCount --output text)"
expect_eq "preview: the two oldest" "v1 v2" "$(awsb ecr get-lifecycle-policy-preview --repository-name lc/app --query 'previewResults[].imageTags[0]' --output text | tr '\t' '\n' | sort | xargs)"
expect_eq "preview: digests" "$(printf '%s\n' "$(digest_of v1)" "$(digest_of v2)" | sort | xargs)" \
  "$(awsb ecr get-lifecycle-policy-preview --repository-name lc/app --query 'previewResults[].imageDigest' --output text | tr '\t' '\n' | sort | xargs)"
expect_eq "preview: action and rule" "EXPIRE 1" "$(awsb ecr get-lifecycle-policy-preview --repository-name lc/app --image-ids imageTag=v2 --query 'previewResults[0].[action.type,appliedRulePriority]' --output text | xargs)"
expect_eq "a preview deletes nothing" "v1 v2 v3 v4" "$(tags_of lc/app)"

# Put it: the controller expires v1 and v2, and the collector removes their blobs.
old_blobs="$(blobs_of v2) $(digest_of v2)"
shared_blobs="$(blobs_of v1) $(digest_of v1)"
kept_blobs="$(blobs_of v3) $(blobs_of v4)"
for d in $old_blobs $shared_blobs $kept_blobs; do
  [ -e "$(blob_file "$d")" ] || fail "blob file of $d exists before expiry"
done
expect_eq "put-lifecycle-policy" "lc/app" "$(awsb ecr put-lifecycle-policy --repository-name lc/app --lifecycle-policy-text "$POLICY" --query repositoryName --output text)"
wait_for "the policy to leave two images" 60 tags_are lc/app "v3 v4" || true
expect_eq "the two newest remain" "v3 v4" "$(tags_of lc/app)"
expect_eq "describe-images agrees" 2 "$(awsb ecr describe-images --repository-name lc/app --query 'length(imageDetails)' --output text)"
expect_eq "get-lifecycle-policy returns the text" "$POLICY" "$(awsb ecr get-lifecycle-policy --repository-name lc/app --query lifecyclePolicyText --output text)"
expect_eq "lastEvaluatedAt is recorded" 1 "$(awsb ecr get-lifecycle-policy --repository-name lc/app --output json | python3 -c 'import json,sys; print(int("lastEvaluatedAt" in json.load(sys.stdin)))')"

# shellcheck disable=SC2086
wait_for "the expired image's blobs to be collected" 60 all_absent $old_blobs || true
for d in $old_blobs; do
  expect_eq "expired blob $d is gone from disk" absent "$([ -e "$(blob_file "$d")" ] && echo present || echo absent)"
  expect_eq "expired blob $d is unknown to the registry" 404 "$(head_status lc/app "$d")"
done
for d in $shared_blobs; do
  expect_eq "blob $d still used by lc/other stays on disk" present "$([ -e "$(blob_file "$d")" ] && echo present || echo absent)"
  expect_eq "blob $d still readable from lc/other" 200 "$(head_status lc/other "$d")"
  expect_eq "blob $d no longer readable from lc/app" 404 "$(head_status lc/app "$d")"
done
for d in $kept_blobs; do
  expect_eq "kept blob $d readable" 200 "$(head_status lc/app "$d")"
done
"${SK[@]}" copy --src-tls-verify=false "docker://$REG/lc/app:v4" "oci:$WORK/back:v4" >/dev/null
expect_eq "the newest image still pulls" "$(digest_of v4)" "$("${SK[@]}" inspect --format '{{.Digest}}' "oci:$WORK/back:v4")"
"${SK[@]}" copy --src-tls-verify=false "docker://$REG/lc/other:v1" "oci:$WORK/back:v1" >/dev/null
expect_eq "the other repository's image still pulls" "$(digest_of v1)" "$("${SK[@]}" inspect --format '{{.Digest}}' "oci:$WORK/back:v1")"

# The policy keeps acting: a fifth push expires v3.
push v5 lc/app
wait_for "the push to expire v3" 60 tags_are lc/app "v4 v5" || true
expect_eq "a push beyond the count expires the oldest" "v4 v5" "$(tags_of lc/app)"

# The policy survives kill -9; deleting it stops enforcement.
kill9_berth
start_berth --registry-gc-grace 0
REG="127.0.0.1:$BERTH_PORT"
expect_eq "policy after kill -9" "$POLICY" "$(awsb ecr get-lifecycle-policy --repository-name lc/app --query lifecyclePolicyText --output text)"
expect_eq "delete-lifecycle-policy returns the text" "$POLICY" "$(awsb ecr delete-lifecycle-policy --repository-name lc/app --query lifecyclePolicyText --output text)"
expect_error "policy is gone" LifecyclePolicyNotFoundException awsb ecr get-lifecycle-policy --repository-name lc/app
push v1 lc/app
# The controller handles events in order: once a later policy on another repository has
# acted, the push above has been seen too.
awsb ecr create-repository --repository-name lc/barrier >/dev/null
push v2 lc/barrier
push v3 lc/barrier
awsb ecr put-lifecycle-policy --repository-name lc/barrier --lifecycle-policy-text "${POLICY/\"countNumber\":2/\"countNumber\":1}" >/dev/null
wait_for "the barrier policy to act" 60 tags_are lc/barrier v3 || true
expect_eq "the barrier policy acted" "v3" "$(tags_of lc/barrier)"
expect_eq "without a policy nothing expires" "v1 v4 v5" "$(tags_of lc/app)"

finish
