//! Log streams: Create, Delete, Describe.

use crate::common::*;
use crate::events::sequence_token;
use crate::types::*;
use crate::Logs;
use berth_store::{Cond, Op, Record, StoreError};
use berth_wire::page::encode_token;
use berth_wire::{ApiError, ApiResult, RequestContext};
use serde_json::{json, Value};

impl Logs {
    pub(crate) fn stream_record(
        &self,
        ctx: &RequestContext,
        group: &str,
        stream: &str,
    ) -> ApiResult<Record> {
        self.group_record(ctx, group)?;
        self.store
            .get(&stream_key(&ctx.account, &ctx.region, group, stream))
            .ok_or_else(stream_not_found)
    }

    pub(crate) fn create_log_stream(
        &self,
        ctx: &RequestContext,
        input: CreateLogStreamRequest,
    ) -> ApiResult<()> {
        let group = input.log_group_name.as_str();
        let stream = input.log_stream_name.as_str();
        check_group_name(group, "logGroupName")?;
        check_stream_name(stream, "logStreamName")?;
        loop {
            let _guard = self.lock_meta();
            let g = self.group_record(ctx, group)?;
            let sk = stream_key(&ctx.account, &ctx.region, group, stream);
            if self.store.get(&sk).is_some() {
                return Err(already_exists());
            }
            self.events
                .create_stream(&sref(ctx, group, stream))
                .map_err(io_err)?;
            let record = json!({
                "logGroupName": group,
                "logStreamName": stream,
                "creationTime": self.now_ms(),
            });
            match self.store.txn(
                &[
                    Cond::Revision(group_key(&ctx.account, &ctx.region, group), g.revision),
                    Cond::Absent(sk.clone()),
                ],
                vec![Op::Put(sk.clone(), record)],
            ) {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict(_)) if self.store.get(&sk).is_some() => {
                    return Err(already_exists())
                }
                // The group changed meanwhile (a tag, a retention policy): try again.
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(store_err(e)),
            }
        }
    }

    pub(crate) fn delete_log_stream(
        &self,
        ctx: &RequestContext,
        input: DeleteLogStreamRequest,
    ) -> ApiResult<()> {
        let group = input.log_group_name.as_str();
        let stream = input.log_stream_name.as_str();
        check_group_name(group, "logGroupName")?;
        check_stream_name(stream, "logStreamName")?;
        let _guard = self.lock_meta();
        let r = self.stream_record(ctx, group, stream)?;
        self.store
            .txn(
                &[Cond::Revision(r.key.clone(), r.revision)],
                vec![Op::Delete(r.key.clone())],
            )
            .map_err(store_err)?;
        if let Err(e) = self.events.delete_stream(&sref(ctx, group, stream)) {
            tracing::warn!(group = %group, stream = %stream, error = %e, "logs: could not delete a deleted stream's events");
        }
        Ok(())
    }

    pub(crate) fn describe_log_streams(
        &self,
        ctx: &RequestContext,
        input: DescribeLogStreamsRequest,
    ) -> ApiResult<DescribeLogStreamsResponse> {
        let group = group_from(
            ctx,
            input.log_group_name.as_deref(),
            input.log_group_identifier.as_deref(),
        )?;
        self.group_record(ctx, &group)?;
        let prefix = input.log_stream_name_prefix.as_deref();
        let by_time = input.order_by == Some(OrderBy::LastEventTime);
        if by_time && prefix.is_some() {
            return Err(invalid(
                "Cannot order by LastEventTime with a logStreamNamePrefix.",
            ));
        }
        if let Some(p) = prefix {
            check_stream_name(p, "logStreamNamePrefix")?;
        }
        let descending = input.descending == Some(true);
        let limit = input.limit.map_or(50, |l| l as usize);
        let after = decode_next(input.next_token.as_deref())?;
        let base = stream_prefix(&ctx.account, &ctx.region, &group);
        let (page, next): (Vec<LogStream>, Option<String>) = if by_time {
            // Every stream's last event time, sorted; the token is the last (time, name).
            let mut all = vec![];
            for r in self.store.list(&base) {
                let name = r.value["logStreamName"].as_str().unwrap_or_default();
                let v = self.render_stream(ctx, &group, name, &r.value)?;
                let t = v.last_event_timestamp.unwrap_or(0);
                all.push((format!("{t:020}:{name}"), v));
            }
            all.sort_by(|a, b| a.0.cmp(&b.0));
            if descending {
                all.reverse();
            }
            let start = match &after {
                None => 0,
                Some(a) => all
                    .iter()
                    .position(|(k, _)| if descending { k < a } else { k > a })
                    .unwrap_or(all.len()),
            };
            let mut rest: Vec<(String, LogStream)> = all.into_iter().skip(start).collect();
            let next = if rest.len() > limit {
                rest.truncate(limit);
                rest.last().map(|(k, _)| encode_token(k))
            } else {
                None
            };
            (rest.into_iter().map(|(_, v)| v).collect(), next)
        } else {
            let scan_prefix = format!("{base}{}", prefix.unwrap_or(""));
            let after_key = after.map(|n| format!("{base}{n}"));
            let mut records: Vec<Record> = vec![];
            self.store.scan(
                &scan_prefix,
                after_key.as_deref(),
                descending,
                limit + 1,
                &mut |r| {
                    records.push(r.clone());
                    true
                },
            );
            let next = if records.len() > limit {
                records.truncate(limit);
                records
                    .last()
                    .and_then(|r| r.value["logStreamName"].as_str())
                    .map(encode_token)
            } else {
                None
            };
            let mut out = vec![];
            for r in &records {
                let name = r.value["logStreamName"].as_str().unwrap_or_default();
                out.push(self.render_stream(ctx, &group, name, &r.value)?);
            }
            (out, next)
        };
        Ok(DescribeLogStreamsResponse {
            log_streams: Some(page),
            next_token: next,
        })
    }

    /// A stream as DescribeLogStreams shows it: its record plus what its segments say.
    fn render_stream(
        &self,
        ctx: &RequestContext,
        group: &str,
        name: &str,
        record: &Value,
    ) -> ApiResult<LogStream> {
        let stats = self.events.stats(&sref(ctx, group, name)).map_err(io_err)?;
        Ok(LogStream {
            log_stream_name: Some(name.to_string()),
            creation_time: record["creationTime"].as_i64(),
            first_event_timestamp: stats.first_event,
            last_event_timestamp: stats.last_event,
            last_ingestion_time: stats.last_ingestion,
            upload_sequence_token: Some(sequence_token(stats.end)),
            arn: Some(stream_arn(ctx, group, name)),
            // AWS reports 0 for streams since 2019; the group's storedBytes is real.
            stored_bytes: Some(0),
        })
    }
}

fn already_exists() -> ApiError {
    ApiError::client(
        "ResourceAlreadyExistsException",
        "The specified log stream already exists",
    )
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use serde_json::json;

    #[test]
    fn streams_lifecycle_and_ordering() {
        let f = fixture();
        assert_eq!(
            f.err(
                "CreateLogStream",
                json!({"logGroupName": "g", "logStreamName": "s"})
            )
            .code,
            "ResourceNotFoundException"
        );
        f.ok("CreateLogGroup", json!({"logGroupName": "g"}));
        f.ok("CreateLogGroup", json!({"logGroupName": "g/x"}));
        for s in ["b", "a", "c/1"] {
            f.ok(
                "CreateLogStream",
                json!({"logGroupName": "g", "logStreamName": s}),
            );
        }
        // A stream of group g/x never shows among g's.
        f.ok(
            "CreateLogStream",
            json!({"logGroupName": "g/x", "logStreamName": "y"}),
        );
        assert_eq!(
            f.err(
                "CreateLogStream",
                json!({"logGroupName": "g", "logStreamName": "a"})
            )
            .code,
            "ResourceAlreadyExistsException"
        );
        assert_eq!(
            f.err(
                "CreateLogStream",
                json!({"logGroupName": "g", "logStreamName": "a:b"})
            )
            .code,
            "InvalidParameterException"
        );
        let names = |v: &serde_json::Value| -> Vec<String> {
            v["logStreams"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["logStreamName"].as_str().unwrap().to_string())
                .collect()
        };
        let all = f.ok("DescribeLogStreams", json!({"logGroupName": "g"}));
        assert_eq!(names(&all), ["a", "b", "c/1"]);
        assert_eq!(
            all["logStreams"][0]["arn"],
            "arn:aws:logs:us-east-1:000000000000:log-group:g:log-stream:a"
        );
        assert!(all["logStreams"][0].get("lastEventTimestamp").is_none());
        let d = f.ok(
            "DescribeLogStreams",
            json!({"logGroupName": "g", "descending": true, "limit": 2}),
        );
        assert_eq!(names(&d), ["c/1", "b"]);
        let d2 = f.ok(
            "DescribeLogStreams",
            json!({"logGroupName": "g", "descending": true, "limit": 2, "nextToken": d["nextToken"]}),
        );
        assert_eq!(names(&d2), ["a"]);
        assert!(d2["nextToken"].is_null());
        let p = f.ok(
            "DescribeLogStreams",
            json!({"logGroupIdentifier": "arn:aws:logs:us-east-1:000000000000:log-group:g:*", "logStreamNamePrefix": "c"}),
        );
        assert_eq!(names(&p), ["c/1"]);
        // Order by last event time.
        let now = f.now();
        for (s, t) in [("a", now - 10), ("b", now - 30), ("c/1", now - 20)] {
            f.ok(
                "PutLogEvents",
                json!({"logGroupName": "g", "logStreamName": s, "logEvents": [{"timestamp": t, "message": "m"}]}),
            );
        }
        let t = f.ok(
            "DescribeLogStreams",
            json!({"logGroupName": "g", "orderBy": "LastEventTime", "descending": true}),
        );
        assert_eq!(names(&t), ["a", "c/1", "b"]);
        assert_eq!(t["logStreams"][0]["lastEventTimestamp"], now - 10);
        assert_eq!(t["logStreams"][0]["firstEventTimestamp"], now - 10);
        assert!(t["logStreams"][0]["lastIngestionTime"].as_i64().unwrap() >= now);
        let t1 = f.ok(
            "DescribeLogStreams",
            json!({"logGroupName": "g", "orderBy": "LastEventTime", "limit": 2}),
        );
        assert_eq!(names(&t1), ["b", "c/1"]);
        let t2 = f.ok(
            "DescribeLogStreams",
            json!({"logGroupName": "g", "orderBy": "LastEventTime", "limit": 2, "nextToken": t1["nextToken"]}),
        );
        assert_eq!(names(&t2), ["a"]);
        assert_eq!(
            f.err(
                "DescribeLogStreams",
                json!({"logGroupName": "g", "orderBy": "LastEventTime", "logStreamNamePrefix": "a"})
            )
            .code,
            "InvalidParameterException"
        );
        // Delete one stream, then the group with the rest.
        f.ok(
            "DeleteLogStream",
            json!({"logGroupName": "g", "logStreamName": "a"}),
        );
        assert_eq!(
            f.err(
                "DeleteLogStream",
                json!({"logGroupName": "g", "logStreamName": "a"})
            )
            .code,
            "ResourceNotFoundException"
        );
        // Re-created, it starts empty.
        f.ok(
            "CreateLogStream",
            json!({"logGroupName": "g", "logStreamName": "a"}),
        );
        let e = f.ok(
            "GetLogEvents",
            json!({"logGroupName": "g", "logStreamName": "a"}),
        );
        assert_eq!(e["events"], json!([]));
        f.ok("DeleteLogGroup", json!({"logGroupName": "g"}));
        f.ok("CreateLogGroup", json!({"logGroupName": "g"}));
        let s = f.ok("DescribeLogStreams", json!({"logGroupName": "g"}));
        assert_eq!(s["logStreams"], json!([]));
        let other = f.ok("DescribeLogStreams", json!({"logGroupName": "g/x"}));
        assert_eq!(names(&other), ["y"]);
    }
}
