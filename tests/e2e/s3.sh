#!/usr/bin/env bash
# S3 as a user drives it with the aws CLI: buckets, objects up and down, listings with
# prefixes, delimiters and pages, ranges and conditions, copies, deletes; bad input gets
# S3's error and changes nothing; an acknowledged upload survives kill -9; signatures are
# checked when auth is enforced.
source "$(dirname "$0")/lib.sh"
start_berth
WORK="$(mktemp -d)"
trap 'stop_berth; rm -rf "$WORK"' EXIT
# Unsigned-looking requests for curl: the scope routes them to S3 (auth is off).
SIGV4="Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0"
s3curl() { curl -s -H "$SIGV4" "$@"; }

# 1. Buckets.
expect_eq "mb" "make_bucket: photos" "$(awsb s3 mb s3://photos)"
expect_eq "ls lists the bucket" "photos" "$(awsb s3 ls | awk '{print $3}')"
expect_eq "head-bucket names the region" "us-east-1" "$(awsb s3api head-bucket --bucket photos --query BucketRegion --output text)"
expect_error "a bucket name against the rules" InvalidBucketName awsb s3api create-bucket --bucket Bad_Name
expect_error "an unknown bucket" NoSuchBucket awsb s3api list-objects-v2 --bucket nobody-has-this
expect_eq "create-bucket again by its owner (us-east-1)" "0" "$(awsb s3api create-bucket --bucket photos >/dev/null 2>&1; echo $?)"
expect_error "a bucket outside us-east-1 needs its constraint" IllegalLocationConstraintException awsb s3api create-bucket --bucket eu-photos --region eu-west-1
expect_eq "a bucket in eu-west-1" "eu-west-1" "$(awsb s3api create-bucket --bucket eu-photos --region eu-west-1 --create-bucket-configuration LocationConstraint=eu-west-1 >/dev/null && awsb s3api get-bucket-location --bucket eu-photos --query LocationConstraint --output text)"
expect_error "another account cannot use the bucket" AccessDenied env AWS_ACCESS_KEY_ID=111111111111 aws --endpoint-url "$BERTH_URL" s3api list-objects-v2 --bucket photos
expect_error "nor take its name" BucketAlreadyExists env AWS_ACCESS_KEY_ID=111111111111 aws --endpoint-url "$BERTH_URL" s3api create-bucket --bucket photos
expect_eq "another account lists only its own buckets" "0" "$(AWS_ACCESS_KEY_ID=111111111111 aws --endpoint-url "$BERTH_URL" s3api list-buckets --query 'length(Buckets)')"

# 2. Objects up and down.
head -c 3000000 /dev/urandom >"$WORK/blob"
echo "hello berth" >"$WORK/hello.txt"
awsb s3 cp "$WORK/hello.txt" s3://photos/notes/hello.txt >/dev/null
awsb s3api put-object --bucket photos --key data/blob --body "$WORK/blob" --content-type application/x-test --metadata owner=e2e,kind=random >/dev/null
expect_eq "cp down" "hello berth" "$(awsb s3 cp s3://photos/notes/hello.txt -)"
awsb s3api get-object --bucket photos --key data/blob "$WORK/blob.out" >/dev/null
expect_eq "3 MB object comes back byte for byte" "$(sha256sum <"$WORK/blob")" "$(sha256sum <"$WORK/blob.out")"
expect_eq "ETag is the MD5 of the bytes" "\"$(md5sum <"$WORK/blob" | cut -d' ' -f1)\"" "$(awsb s3api head-object --bucket photos --key data/blob --query ETag --output text)"
expect_eq "content type and metadata kept" "application/x-test e2e random" "$(awsb s3api head-object --bucket photos --key data/blob --query '[ContentType,Metadata.owner,Metadata.kind]' --output text | tr '\t' ' ')"
expect_eq "size" "3000000" "$(awsb s3api head-object --bucket photos --key data/blob --query ContentLength --output text)"
awsb s3api get-object --bucket photos --key data/blob --range bytes=100-199 "$WORK/range" >/dev/null
expect_eq "a range is those bytes" "$(tail -c +101 "$WORK/blob" | head -c 100 | sha256sum)" "$(sha256sum <"$WORK/range")"
expect_eq "a range past the end: 416" "416" "$(s3curl -o /dev/null -w '%{http_code}' -H 'Range: bytes=5000000-' "$BERTH_URL/photos/data/blob")"
etag=$(awsb s3api head-object --bucket photos --key data/blob --query ETag --output text)
expect_eq "If-None-Match with the ETag: 304" "304" "$(s3curl -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "$BERTH_URL/photos/data/blob")"
expect_error "If-Match with another ETag" PreconditionFailed awsb s3api get-object --bucket photos --key data/blob --if-match '"0000"' "$WORK/x"
expect_error "an unknown key" NoSuchKey awsb s3api get-object --bucket photos --key data/none "$WORK/x"
expect_eq "a key with spaces, + and unicode" "odd" "$(echo odd | awsb s3 cp - 's3://photos/odd dir/a+b é.txt' && awsb s3 cp 's3://photos/odd dir/a+b é.txt' -)"

# 3. Bad uploads are refused and leave the object as it was.
expect_error "a wrong Content-MD5" BadDigest awsb s3api put-object --bucket photos --key notes/hello.txt --body "$WORK/blob" --content-md5 "$(echo -n nothing | openssl md5 -binary | base64)"
expect_error "a wrong CRC32 checksum" BadDigest awsb s3api put-object --bucket photos --key notes/hello.txt --body "$WORK/blob" --checksum-crc32 AAAAAA==
expect_eq "the object is unchanged" "hello berth" "$(awsb s3 cp s3://photos/notes/hello.txt -)"
expect_eq "a body shorter than its Content-Length: nothing stored" "404" "$(python3 - "$BERTH_PORT" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"PUT /photos/cut HTTP/1.1\r\nHost: x\r\nAuthorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
s.close()
EOF
s3curl -o /dev/null -w '%{http_code}' "$BERTH_URL/photos/cut")"
expect_eq "malformed XML: MalformedXML" "MalformedXML" "$(s3curl -X POST -H "Content-MD5: $(echo -n '<Delete><Object>' | openssl md5 -binary | base64)" --data-binary '<Delete><Object>' "$BERTH_URL/photos?delete" | sed -n 's:.*<Code>\(.*\)</Code>.*:\1:p')"
expect_eq "an operation Berth does not serve: 501 naming it" "501 GetBucketAcl" "$(s3curl -o "$WORK/err" -w '%{http_code}' "$BERTH_URL/photos?acl") $(sed -n 's:.*<Message>\([A-Za-z]*\) is not.*:\1:p' "$WORK/err")"
expect_error "an operation Berth does not serve (CLI)" NotImplemented awsb s3api get-bucket-policy --bucket photos
expect_error "a key over 1024 bytes" KeyTooLongError awsb s3api put-object --bucket photos --key "$(head -c 1100 /dev/zero | tr '\0' k)" --body "$WORK/hello.txt"

# 4. Listings: prefixes, delimiters, pages.
for i in 1 2 3 4 5; do echo "$i" | awsb s3 cp - "s3://photos/pages/p$i" >/dev/null; done
expect_eq "ls with a delimiter" "PRE data/ PRE notes/ PRE odd dir/ PRE pages/" "$(awsb s3 ls s3://photos/ | awk '{$1=$1; print}' | paste -sd' ')"
expect_eq "list-objects-v2 with a prefix" "pages/p1 pages/p2 pages/p3 pages/p4 pages/p5" "$(awsb s3api list-objects-v2 --bucket photos --prefix pages/ --query 'Contents[].Key' --output text | tr '\t' ' ')"
expect_eq "pages of 2 (continuation tokens) list all keys once" "8" "$(awsb s3api list-objects-v2 --bucket photos --page-size 2 --query 'Contents[].Key' --output text | tr '\t' '\n' | sort -u | wc -l)"
expect_eq "list-objects (v1) pages with markers" "8" "$(awsb s3api list-objects --bucket photos --page-size 2 --query 'Contents[].Key' --output text | tr '\t' '\n' | sort -u | wc -l)"
expect_eq "pages of 1 with a delimiter: each prefix once" "data/ notes/ odd dir/ pages/" "$(awsb s3api list-objects-v2 --bucket photos --delimiter / --page-size 1 --query 'CommonPrefixes[].Prefix' --output text | tr '\t' '\n' | paste -sd' ')"
expect_eq "start-after" "pages/p4 pages/p5" "$(awsb s3api list-objects-v2 --bucket photos --prefix pages/ --start-after pages/p3 --query 'Contents[].Key' --output text | tr '\t' ' ')"

# 5. Copies and deletes.
awsb s3 cp s3://photos/data/blob s3://photos/copies/blob >/dev/null
expect_eq "copy keeps the bytes and metadata" "$etag e2e" "$(awsb s3api head-object --bucket photos --key copies/blob --query '[ETag,Metadata.owner]' --output text | tr '\t' ' ')"
expect_error "copy onto itself without REPLACE" InvalidRequest awsb s3api copy-object --bucket photos --key copies/blob --copy-source photos/copies/blob
awsb s3api copy-object --bucket photos --key copies/blob --copy-source photos/copies/blob --metadata-directive REPLACE --metadata owner=new >/dev/null
expect_eq "copy with REPLACE" "new" "$(awsb s3api head-object --bucket photos --key copies/blob --query Metadata.owner --output text)"
expect_error "rb of a bucket with objects" BucketNotEmpty awsb s3api delete-bucket --bucket photos
expect_eq "delete-objects" "pages/p1 pages/p2" "$(awsb s3api delete-objects --bucket photos --delete 'Objects=[{Key=pages/p1},{Key=pages/p2}]' --query 'Deleted[].Key' --output text | tr '\t' ' ')"
expect_eq "what remains under pages/" "pages/p3 pages/p4 pages/p5" "$(awsb s3api list-objects-v2 --bucket photos --prefix pages/ --query 'Contents[].Key' --output text | tr '\t' ' ')"

# 5b. Multipart: the CLI splits files of 8 MB and more into parts sent in parallel, and
#     copies large objects part by part.
awsb s3 mb s3://large >/dev/null
head -c 20000000 /dev/urandom >"$WORK/big"
awsb s3 cp "$WORK/big" s3://large/big >/dev/null
expect_eq "multipart ETag: MD5 of the parts' MD5s, then the count" "3" "$(awsb s3api head-object --bucket large --key big --query ETag --output text | tr -d '"' | cut -d- -f2)"
awsb s3 cp s3://large/big "$WORK/big.out" >/dev/null
expect_eq "a 20 MB multipart upload comes back byte for byte" "$(sha256sum <"$WORK/big")" "$(sha256sum <"$WORK/big.out")"
awsb s3 cp s3://large/big s3://large/big-copy >/dev/null
awsb s3api get-object --bucket large --key big-copy "$WORK/copy.out" >/dev/null
expect_eq "a multipart copy (UploadPartCopy) keeps the bytes" "$(sha256sum <"$WORK/big")" "$(sha256sum <"$WORK/copy.out")"
up=$(awsb s3api create-multipart-upload --bucket large --key pending --query UploadId --output text)
awsb s3api upload-part --bucket large --key pending --upload-id "$up" --part-number 1 --body "$WORK/hello.txt" >/dev/null
expect_eq "list-multipart-uploads" "pending" "$(awsb s3api list-multipart-uploads --bucket large --query 'Uploads[].Key' --output text)"
expect_eq "list-parts" "1 12" "$(awsb s3api list-parts --bucket large --key pending --upload-id "$up" --query 'Parts[].[PartNumber,Size]' --output text | tr '\t' ' ')"
expect_error "part number out of range" InvalidArgument awsb s3api upload-part --bucket large --key pending --upload-id "$up" --part-number 10001 --body "$WORK/hello.txt"
expect_error "completing with a part that was not uploaded" InvalidPart awsb s3api complete-multipart-upload --bucket large --key pending --upload-id "$up" --multipart-upload 'Parts=[{PartNumber=2,ETag="0"}]'
awsb s3api abort-multipart-upload --bucket large --key pending --upload-id "$up"
expect_error "an aborted upload is gone" NoSuchUpload awsb s3api list-parts --bucket large --key pending --upload-id "$up"
expect_eq "pending never became an object" "big big-copy" "$(awsb s3api list-objects-v2 --bucket large --query 'Contents[].Key' --output text | tr '\t' ' ')"
awsb s3 rb --force s3://large >/dev/null

# 6. An acknowledged upload survives kill -9, and what the upload replaced is gone.
echo "version 2" | awsb s3 cp - s3://photos/notes/hello.txt >/dev/null
kill9_berth
start_berth
expect_eq "after kill -9: the last acknowledged version" "version 2" "$(awsb s3 cp s3://photos/notes/hello.txt -)"
expect_eq "after kill -9: the listing is intact" "7" "$(awsb s3api list-objects-v2 --bucket photos --query 'length(Contents)')"
expect_eq "one file per stored object, none left over" "$(awsb s3api list-objects-v2 --bucket photos --query 'length(Contents)')" "$(ls "$BERTH_DATA/s3/objects" | wc -l)"
awsb s3 rb --force s3://photos >/dev/null
expect_eq "rb --force empties and removes the bucket" "eu-photos" "$(awsb s3api list-buckets --query 'Buckets[].Name' --output text)"
expect_eq "no object files left" "0" "$(ls "$BERTH_DATA/s3/objects" | wc -l)"
expect_eq "server still up" "200" "$(curl -s -o /dev/null -w '%{http_code}' "$BERTH_URL/_berth/health")"

# 7. With --enforce-auth, only signed requests with the right secret get through.
stop_berth
start_berth --enforce-auth
expect_eq "signed: allowed" "eu-photos" "$(awsb s3api list-buckets --query 'Buckets[].Name' --output text)"
echo signed | awsb s3 cp - s3://eu-photos/signed.txt --region eu-west-1 >/dev/null
expect_eq "a signed upload and download" "signed" "$(awsb s3 cp s3://eu-photos/signed.txt - --region eu-west-1)"
expect_error "a wrong secret" SignatureDoesNotMatch env AWS_SECRET_ACCESS_KEY=wrong aws --endpoint-url "$BERTH_URL" s3api list-buckets
expect_eq "unsigned: 403" "403" "$(curl -s -o /dev/null -w '%{http_code}' "$BERTH_URL/eu-photos/signed.txt" -H 'Host: s3.localhost')"
finish
