#!/usr/bin/env bash
# The registry with its blobs in an S3-compatible bucket (--registry-store s3://...): one
# Berth serves S3, a second keeps its registry's blobs in that Berth's bucket. skopeo
# pushes and pulls through the second; the aws CLI looks into the bucket on the first.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/images.sh"
start_berth # the S3 server
S3_URL="$BERTH_URL"
WORK="$(mktemp -d)"
SK=(skopeo --insecure-policy)
s3() { aws --endpoint-url "$S3_URL" s3 "$@"; }
s3api() { aws --endpoint-url "$S3_URL" s3api "$@"; }
s3 mb s3://layers >/dev/null

# The registry Berth, its blobs under s3://layers/reg/.
REG_PORT="$(free_port)"
REG_DATA="$(mktemp -d)"
REG="127.0.0.1:$REG_PORT"
REG_URL="http://$REG"
start_registry() {
  "$BERTH_BIN" up --listen "$REG" --data-dir "$REG_DATA" --registry-gc-grace 0 \
    --registry-store s3://layers/reg --registry-s3-endpoint "$S3_URL" "$@" >>"$REG_DATA/berth.log" 2>&1 &
  REG_PID=$!
  wait_for "the registry berth" 10 curl -fsS "$REG_URL/_berth/health"
}
trap 'kill "${REG_PID:-}" 2>/dev/null || true; stop_berth' EXIT
start_registry
awsr() { aws --endpoint-url "$REG_URL" "$@"; }
in_bucket() { s3api list-objects-v2 --bucket layers --prefix reg/blobs/ --query 'Contents[].Key' --output text | tr '\t' '\n' | sed 's#.*/##' | sort | xargs; }
has_blob() { s3api head-object --bucket layers --key "reg/blobs/sha256/${1#sha256:}" >/dev/null 2>&1; }
blobs_of() {
  "${SK[@]}" inspect --raw "oci:$WORK/layout:$1" \
    | python3 -c 'import json,sys; m=json.load(sys.stdin); print(" ".join([m["config"]["digest"]]+[l["digest"] for l in m["layers"]]))'
}
digest_of() { "${SK[@]}" inspect --format '{{.Digest}}' "oci:$WORK/layout:$1"; }

for t in v1 v2; do make_image "$WORK/layout" "$t" "s3 store $t"; done
awsr ecr create-repository --repository-name app >/dev/null
"${SK[@]}" copy --dest-tls-verify=false "oci:$WORK/layout:v1" "docker://$REG/app:v1" >/dev/null
"${SK[@]}" copy --src-tls-verify=false "docker://$REG/app:v1" "oci:$WORK/back:v1" >/dev/null
expect_eq "skopeo push and pull through the bucket: digests equal" "$(digest_of v1)" "$("${SK[@]}" inspect --format '{{.Digest}}' "oci:$WORK/back:v1")"
want="$(for d in $(blobs_of v1) "$(digest_of v1)"; do echo "${d#sha256:}"; done | sort | xargs)"
expect_eq "config, layers and manifest are objects in the bucket" "$want" "$(in_bucket)"
expect_eq "no blob file on the registry host" "" "$(find "$REG_DATA/registry" -type f -path '*/blobs/*' | xargs)"

# A blob larger than one part goes up as a multipart upload, and reads back whole, also in ranges.
head -c $((20 * 1024 * 1024 + 5)) /dev/urandom >"$WORK/big"
BIG="sha256:$(sha256sum "$WORK/big" | cut -d' ' -f1)"
loc="$(curl -fsS -D - -o /dev/null -X POST "$REG_URL/v2/app/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')"
expect_eq "20 MiB upload accepted" 201 "$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$WORK/big" "$REG_URL$loc?digest=$BIG")"
expect_eq "its object has every byte" "$((20 * 1024 * 1024 + 5))" "$(s3api head-object --bucket layers --key "reg/blobs/sha256/${BIG#sha256:}" --query ContentLength --output text)"
expect_eq "GET reads it back whole" "${BIG#sha256:}" "$(curl -fsS "$REG_URL/v2/app/blobs/$BIG" | sha256sum | cut -d' ' -f1)"
expect_eq "a range reads the bytes asked for" "$(tail -c +1000001 "$WORK/big" | head -c 17 | od -An -tx1 | xargs)" \
  "$(curl -fsS -H 'Range: bytes=1000000-1000016' "$REG_URL/v2/app/blobs/$BIG" | od -An -tx1 | xargs)"

# A wrong digest is refused and nothing reaches the bucket.
head -c 4096 /dev/urandom >"$WORK/small"
loc="$(curl -fsS -D - -o /dev/null -X POST "$REG_URL/v2/app/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')"
WRONG="sha256:$(printf '%064d' 7)"
expect_eq "wrong digest refused" DIGEST_INVALID "$(curl -s -X PUT --data-binary "@$WORK/small" "$REG_URL$loc?digest=$WRONG" | python3 -c 'import json,sys; print(json.load(sys.stdin)["errors"][0]["code"])')"
SMALL="sha256:$(sha256sum "$WORK/small" | cut -d' ' -f1)"
expect_eq "neither digest is in the bucket" "no no" "$(has_blob "$WRONG" && echo yes || echo no) $(has_blob "$SMALL" && echo yes || echo no)"

# Acknowledged pushes survive kill -9 of the registry.
kill -9 "$REG_PID"; wait "$REG_PID" 2>/dev/null || true
start_registry
rm -rf "$WORK/back"
"${SK[@]}" copy --src-tls-verify=false "docker://$REG/app:v1" "oci:$WORK/back:v1" >/dev/null
expect_eq "pull after kill -9" "$(digest_of v1)" "$("${SK[@]}" inspect --format '{{.Digest}}' "oci:$WORK/back:v1")"

# Garbage collection deletes from the bucket: a policy keeping one 'v' image expires v1,
# and v1's blobs go; v2's stay.
"${SK[@]}" copy --dest-tls-verify=false "oci:$WORK/layout:v2" "docker://$REG/app:v2" >/dev/null
v1_only="$(comm -23 <(blobs_of v1 | tr ' ' '\n' | sort) <(blobs_of v2 | tr ' ' '\n' | sort) | xargs) $(digest_of v1)"
kept="$(blobs_of v2) $(digest_of v2)"
POLICY='{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged","tagPrefixList":["v"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}'
awsr ecr put-lifecycle-policy --repository-name app --lifecycle-policy-text "$POLICY" >/dev/null
gone() { local d; for d in "$@"; do ! has_blob "$d" || return 1; done; }
# shellcheck disable=SC2086
wait_for "v1's blobs to leave the bucket" 60 gone $v1_only || true
for d in $v1_only; do expect_eq "expired blob ${d:7:12} deleted from the bucket" no "$(has_blob "$d" && echo yes || echo no)"; done
for d in $kept; do expect_eq "v2's blob ${d:7:12} kept" yes "$(has_blob "$d" && echo yes || echo no)"; done
rm -rf "$WORK/back"
"${SK[@]}" copy --src-tls-verify=false "docker://$REG/app:v2" "oci:$WORK/back:v2" >/dev/null
expect_eq "the kept image still pulls" "$(digest_of v2)" "$("${SK[@]}" inspect --format '{{.Digest}}' "oci:$WORK/back:v2")"

# A bucket that does not exist stops the start with a clear error.
kill "$REG_PID"; wait "$REG_PID" 2>/dev/null || true; REG_PID=""
out="$("$BERTH_BIN" up --listen "127.0.0.1:$(free_port)" --data-dir "$(mktemp -d)" --registry-store s3://no-such-bucket --registry-s3-endpoint "$S3_URL" 2>&1 || true)"
expect_eq "missing bucket refused at start" yes "$(grep -q 'bucket no-such-bucket' <<<"$out" && echo yes || echo "no: $out")"
out="$("$BERTH_BIN" up --listen "127.0.0.1:$(free_port)" --data-dir "$(mktemp -d)" --registry-store ftp://x 2>&1 || true)"
expect_eq "a store that is not local or s3:// is refused" yes "$(grep -q 'expected local or s3://' <<<"$out" && echo yes || echo "no: $out")"
rm -rf "$WORK"
finish
