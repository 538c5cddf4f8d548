use super::*;
use crate::ops::{identify, Target};
use std::collections::HashMap;

fn s3(dir: &Path) -> S3 {
    let store = berth_store::SqliteStore::open(&dir.join("state.db")).unwrap();
    S3::open(Arc::new(store), Clock::default(), &dir.join("s3")).unwrap()
}

/// Stage `bytes` as a received body would be.
fn staged(s3: &S3, bytes: &[u8]) -> Staged {
    let path = s3.staging_path();
    std::fs::write(&path, bytes).unwrap();
    Staged {
        path,
        size: bytes.len() as u64,
        md5: <md5::Md5 as md5::Digest>::digest(bytes).into(),
    }
}

fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn operations_are_told_apart_by_their_bindings() {
    let none = |_: &str| false;
    let copy = |h: &str| h == "x-amz-copy-source";
    assert_eq!(
        identify("GET", Target::Service, &q(&[]), none),
        Some("ListBuckets")
    );
    assert_eq!(
        identify("PUT", Target::Bucket, &q(&[]), none),
        Some("CreateBucket")
    );
    assert_eq!(
        identify("GET", Target::Bucket, &q(&[]), none),
        Some("ListObjects")
    );
    assert_eq!(
        identify("GET", Target::Bucket, &q(&[("list-type", "2")]), none),
        Some("ListObjectsV2")
    );
    assert_eq!(
        identify("GET", Target::Bucket, &q(&[("acl", "")]), none),
        Some("GetBucketAcl")
    );
    assert_eq!(
        identify("PUT", Target::Object, &q(&[]), none),
        Some("PutObject")
    );
    assert_eq!(
        identify("PUT", Target::Object, &q(&[]), copy),
        Some("CopyObject")
    );
    let part = q(&[("partNumber", "1"), ("uploadId", "u")]);
    assert_eq!(
        identify("PUT", Target::Object, &part, none),
        Some("UploadPart")
    );
    assert_eq!(
        identify("PUT", Target::Object, &part, copy),
        Some("UploadPartCopy")
    );
    assert_eq!(
        identify("DELETE", Target::Object, &q(&[("uploadId", "u")]), none),
        Some("AbortMultipartUpload")
    );
    assert_eq!(
        identify("DELETE", Target::Object, &q(&[]), none),
        Some("DeleteObject")
    );
    assert_eq!(
        identify("POST", Target::Bucket, &q(&[("delete", "")]), none),
        Some("DeleteObjects")
    );
    assert_eq!(identify("PATCH", Target::Object, &q(&[]), none), None);
}

#[test]
fn bucket_names_follow_aws_rules() {
    for ok in ["abc", "my-bucket.logs", "a1b", &"a".repeat(63)] {
        assert!(valid_bucket_name(ok), "{ok}");
    }
    for bad in [
        "ab",
        &"a".repeat(64),
        "My-Bucket",
        "-abc",
        "abc-",
        "a..b",
        "a.-b",
        "192.168.1.1",
        "xn--abc",
        "abc-s3alias",
        "a_b",
    ] {
        assert!(!valid_bucket_name(bad), "{bad}");
    }
}

#[test]
fn buckets_are_global_and_owned() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = s3(dir.path());
    s3.create_bucket("111111111111", "us-east-1", "shared", None)
        .unwrap();
    // The owner again in us-east-1: success, as AWS answers it.
    s3.create_bucket("111111111111", "us-east-1", "shared", None)
        .unwrap();
    let e = s3
        .create_bucket("222222222222", "us-east-1", "shared", None)
        .unwrap_err();
    assert_eq!(e.code, "BucketAlreadyExists");
    assert_eq!(
        s3.owned_bucket("222222222222", "shared").unwrap_err().code,
        "AccessDenied"
    );
    let e = s3
        .create_bucket("111111111111", "eu-west-1", "elsewhere", None)
        .unwrap_err();
    assert_eq!(e.code, "IllegalLocationConstraintException");
    s3.create_bucket("111111111111", "eu-west-1", "elsewhere", Some("eu-west-1"))
        .unwrap();
    let e = s3
        .create_bucket("111111111111", "eu-west-1", "elsewhere", Some("eu-west-1"))
        .unwrap_err();
    assert_eq!(e.code, "BucketAlreadyOwnedByYou");
    assert_eq!(s3.list_buckets("111111111111").len(), 2);
    assert!(s3.list_buckets("222222222222").is_empty());
}

#[test]
fn objects_replace_whole_and_leave_no_files_behind() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = s3(dir.path());
    let a = "000000000000";
    s3.create_bucket(a, "us-east-1", "bkt", None).unwrap();
    let first = s3
        .put_object(a, "bkt", "k", staged(&s3, b"one"), ObjectMeta::default())
        .unwrap();
    assert_eq!(
        first["etag"],
        hex::encode(<md5::Md5 as md5::Digest>::digest(b"one"))
    );
    s3.put_object(a, "bkt", "k", staged(&s3, b"two!"), ObjectMeta::default())
        .unwrap();
    assert_eq!(s3.read_object(a, "bkt", "k", 100).unwrap(), b"two!");
    let files = || {
        std::fs::read_dir(dir.path().join("s3/objects"))
            .unwrap()
            .count()
    };
    assert_eq!(files(), 1, "the replaced object's file is removed");
    assert_eq!(
        s3.delete_bucket(a, "bkt").unwrap_err().code,
        "BucketNotEmpty"
    );
    s3.copy_object(a, ("bkt", "k"), ("bkt", "copy"), None)
        .unwrap();
    assert_eq!(s3.read_object(a, "bkt", "copy", 100).unwrap(), b"two!");
    s3.delete_object(a, "bkt", "k").unwrap();
    s3.delete_object(a, "bkt", "k").unwrap();
    assert_eq!(s3.read_object(a, "bkt", "copy", 100).unwrap(), b"two!");
    s3.delete_object(a, "bkt", "copy").unwrap();
    assert_eq!(files(), 0);
    assert!(std::fs::read_dir(dir.path().join("s3/tmp"))
        .unwrap()
        .next()
        .is_none());
    s3.delete_bucket(a, "bkt").unwrap();
    assert_eq!(s3.owned_bucket(a, "bkt").unwrap_err().code, "NoSuchBucket");
}

#[test]
fn reopening_removes_files_without_records() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s3 = s3(dir.path());
        s3.create_bucket("000000000000", "us-east-1", "bkt", None)
            .unwrap();
        s3.put_object(
            "000000000000",
            "bkt",
            "k",
            staged(&s3, b"x"),
            ObjectMeta::default(),
        )
        .unwrap();
        std::fs::write(dir.path().join("s3/objects/orphan"), b"left by a crash").unwrap();
        std::fs::write(s3.staging_path(), b"half an upload").unwrap();
    }
    let s3 = s3(dir.path());
    assert_eq!(
        std::fs::read_dir(dir.path().join("s3/objects"))
            .unwrap()
            .count(),
        1
    );
    assert!(std::fs::read_dir(dir.path().join("s3/tmp"))
        .unwrap()
        .next()
        .is_none());
    assert_eq!(
        s3.read_object("000000000000", "bkt", "k", 10).unwrap(),
        b"x"
    );
}

#[test]
fn listing_pages_and_rolls_up_common_prefixes() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = s3(dir.path());
    let a = "000000000000";
    s3.create_bucket(a, "us-east-1", "bkt", None).unwrap();
    for k in ["a.txt", "dir/", "dir/1", "dir/2", "dir/sub/3", "e/4", "z"] {
        s3.put_object(a, "bkt", k, staged(&s3, b"."), ObjectMeta::default())
            .unwrap();
    }
    let store = s3.store.as_ref();
    let keys = |l: &Listing| {
        l.contents
            .iter()
            .map(|(k, _)| k.clone())
            .collect::<Vec<_>>()
    };

    let top = list_objects(store, "bkt", "", Some("/"), None, 1000);
    assert_eq!(keys(&top), ["a.txt", "z"]);
    assert_eq!(top.common_prefixes, ["dir/", "e/"]);
    assert!(!top.truncated);

    // Pages of two: a common prefix counts once and the next page skips what it covers.
    let p1 = list_objects(store, "bkt", "", Some("/"), None, 2);
    assert_eq!(
        (keys(&p1), p1.common_prefixes.clone()),
        (vec!["a.txt".into()], vec!["dir/".into()])
    );
    assert!(p1.truncated);
    let after = list::resume_after(p1.last.as_deref().unwrap(), "", Some("/"));
    let p2 = list_objects(store, "bkt", "", Some("/"), Some(&after), 2);
    assert_eq!(
        (keys(&p2), p2.common_prefixes.clone()),
        (vec!["z".into()], vec!["e/".into()])
    );
    assert!(!p2.truncated);

    // Inside a prefix, "dir/" itself is a key and paging after it does not skip dir/1.
    let inside = list_objects(store, "bkt", "dir/", Some("/"), None, 1);
    assert_eq!(keys(&inside), ["dir/"]);
    let after = list::resume_after("dir/", "dir/", Some("/"));
    let next = list_objects(store, "bkt", "dir/", Some("/"), Some(&after), 10);
    assert_eq!(keys(&next), ["dir/1", "dir/2"]);
    assert_eq!(next.common_prefixes, ["dir/sub/"]);

    let flat = list_objects(store, "bkt", "dir/", None, None, 1000);
    assert_eq!(keys(&flat), ["dir/", "dir/1", "dir/2", "dir/sub/3"]);
    assert!(list_objects(store, "bkt", "", None, None, 0)
        .contents
        .is_empty());
}

#[test]
fn env_file_arns_name_bucket_and_key() {
    assert_eq!(
        parse_s3_arn("arn:aws:s3:::my-bucket/path/to/app.env"),
        Some(("my-bucket", "path/to/app.env"))
    );
    assert_eq!(parse_s3_arn("arn:aws:s3:::my-bucket"), None);
    assert_eq!(parse_s3_arn("s3://my-bucket/app.env"), None);
    let dir = tempfile::tempdir().unwrap();
    let s3 = s3(dir.path());
    let e = s3
        .read_env_file("000000000000", "arn:aws:s3:::nope/app.env")
        .unwrap_err();
    assert!(e.contains("NoSuchBucket"), "{e}");
}

#[test]
fn xml_bodies_parse_and_refuse_malformed_documents() {
    let doc = xml::parse(
        b"<?xml version=\"1.0\"?><Delete xmlns=\"x\"><Object><Key>a&amp;b</Key></Object><Object><Key><![CDATA[c<d]]></Key></Object><Quiet>true</Quiet></Delete>",
    )
    .unwrap();
    assert_eq!(doc.name, "Delete");
    let keys: Vec<_> = doc
        .all("Object")
        .map(|o| o.child("Key").unwrap().text.clone())
        .collect();
    assert_eq!(keys, ["a&b", "c<d"]);
    assert!(xml::parse(b"<Delete><Object></Delete>").is_none());
    assert!(xml::parse(b"<a/><b/>").is_none());
    assert!(xml::parse(b"not xml").is_none());
    let mut out = String::new();
    xml::escape("a<b>&\"'\u{1}", &mut out);
    assert_eq!(out, "a&lt;b&gt;&amp;&quot;&apos;&#x1;");
}

#[test]
fn multipart_uploads_join_their_parts_in_order() {
    use crate::multipart::{WantedPart, MIN_PART};
    let dir = tempfile::tempdir().unwrap();
    let s3 = s3(dir.path());
    let a = "000000000000";
    s3.create_bucket(a, "us-east-1", "bkt", None).unwrap();
    let id = s3
        .create_upload(a, "bkt", "big", ObjectMeta::default(), None)
        .unwrap();
    let one = vec![1u8; MIN_PART as usize];
    let p1 = s3
        .put_part(a, "bkt", "big", &id, 1, staged(&s3, &one), None)
        .unwrap();
    // Part 2 uploaded twice: the second replaces the first.
    s3.put_part(a, "bkt", "big", &id, 2, staged(&s3, b"old"), None)
        .unwrap();
    let p2 = s3
        .put_part(a, "bkt", "big", &id, 2, staged(&s3, b"tail"), None)
        .unwrap();
    let want = |n: u32, p: &Value| WantedPart {
        number: n,
        etag: format!("\"{}\"", p["etag"].as_str().unwrap()),
    };
    let e = s3
        .complete_upload(a, "bkt", "big", &id, &[want(2, &p2), want(1, &p1)])
        .unwrap_err();
    assert_eq!(e.code, "InvalidPartOrder");
    let e = s3
        .complete_upload(a, "bkt", "big", &id, &[want(1, &p2)])
        .unwrap_err();
    assert_eq!(e.code, "InvalidPart");
    let obj = s3
        .complete_upload(a, "bkt", "big", &id, &[want(1, &p1), want(2, &p2)])
        .unwrap();
    assert!(obj["etag"].as_str().unwrap().ends_with("-2"));
    let body = s3.read_object(a, "bkt", "big", 2 * MIN_PART).unwrap();
    assert_eq!(body.len() as u64, MIN_PART + 4);
    assert_eq!(&body[body.len() - 4..], b"tail");
    assert_eq!(
        s3.upload(a, "bkt", "big", &id).unwrap_err().code,
        "NoSuchUpload"
    );
    assert!(s3.parts(&id).is_empty());
    // Only the object's own file is left.
    assert_eq!(
        std::fs::read_dir(dir.path().join("s3/objects"))
            .unwrap()
            .count(),
        1
    );

    // A small part before another is refused; an aborted upload leaves nothing.
    let id = s3
        .create_upload(a, "bkt", "small", ObjectMeta::default(), None)
        .unwrap();
    let q1 = s3
        .put_part(a, "bkt", "small", &id, 1, staged(&s3, b"x"), None)
        .unwrap();
    let q2 = s3
        .put_part(a, "bkt", "small", &id, 2, staged(&s3, b"y"), None)
        .unwrap();
    let e = s3
        .complete_upload(a, "bkt", "small", &id, &[want(1, &q1), want(2, &q2)])
        .unwrap_err();
    assert_eq!(e.code, "EntityTooSmall");
    s3.abort_upload(a, "bkt", "small", &id).unwrap();
    assert!(s3.parts(&id).is_empty());
    assert_eq!(
        std::fs::read_dir(dir.path().join("s3/objects"))
            .unwrap()
            .count(),
        1
    );

    // Deleting a bucket drops its unfinished uploads.
    let id = s3
        .create_upload(a, "bkt", "left", ObjectMeta::default(), None)
        .unwrap();
    s3.put_part(a, "bkt", "left", &id, 1, staged(&s3, b"z"), None)
        .unwrap();
    s3.delete_object(a, "bkt", "big").unwrap();
    s3.delete_bucket(a, "bkt").unwrap();
    assert!(s3.parts(&id).is_empty());
    assert_eq!(
        std::fs::read_dir(dir.path().join("s3/objects"))
            .unwrap()
            .count(),
        0
    );
}
