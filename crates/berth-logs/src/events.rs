//! Log events: PutLogEvents, GetLogEvents, FilterLogEvents.

use crate::common::*;
use crate::filter::Pattern;
use crate::segments::{EventIter, Pos, StoredEvent};
use crate::types::*;
use crate::Logs;
use berth_wire::page::{decode_token, encode_token};
use berth_wire::{ApiResult, RequestContext};
use serde_json::{json, Value};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// Bytes AWS counts per event on top of its message.
pub const EVENT_OVERHEAD: usize = 26;
/// Largest PutLogEvents batch (messages plus overhead) and largest page of events.
pub const MAX_BATCH_BYTES: usize = 1_048_576;
const MAX_EVENTS: usize = 10_000;
const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;
/// FilterLogEvents reads at most this much per call, then answers with what it found and
/// a nextToken (AWS's pages are likewise "partially full, or even empty").
const FILTER_SCAN_BYTES: u64 = 64 << 20;

/// A position as a token of digits (AWS's tokens are 56 digits long too).
fn pos_digits(p: Pos) -> String {
    format!("{:016}{:040}", p.segment, p.offset)
}

fn parse_pos_digits(s: &str) -> Option<Pos> {
    if s.len() != 56 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(Pos {
        segment: s[..16].parse().ok()?,
        offset: s[16..].parse().ok()?,
    })
}

pub fn sequence_token(end: Pos) -> String {
    pos_digits(end)
}

/// `f/<digits>` reads forward from a position; `b/<digits>` reads backward from one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Forward(Pos),
    Backward(Pos),
}

impl Token {
    fn parse(s: &str) -> Option<Token> {
        if let Some(d) = s.strip_prefix("f/") {
            parse_pos_digits(d).map(Token::Forward)
        } else if let Some(d) = s.strip_prefix("b/") {
            parse_pos_digits(d).map(Token::Backward)
        } else {
            None
        }
    }
    fn render(self) -> String {
        match self {
            Token::Forward(p) => format!("f/{}", pos_digits(p)),
            Token::Backward(p) => format!("b/{}", pos_digits(p)),
        }
    }
}

fn event_size(message: &str) -> usize {
    message.len() + EVENT_OVERHEAD
}

/// Sixteen digits naming a stream within its group, for event ids.
fn stream_digits(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h % 10_000_000_000_000_000
}

impl Logs {
    /// A read's `limit` and its time window [startTime, endTime), narrowed to what the
    /// group's retention still shows.
    fn window(
        &self,
        limit: Option<i32>,
        start: Option<i64>,
        end: Option<i64>,
        group: &Value,
    ) -> (usize, i64, i64) {
        let limit = limit.map_or(MAX_EVENTS, |l| l as usize);
        let lo = start.unwrap_or(i64::MIN).max(self.retention_cutoff(group));
        (limit, lo, end.unwrap_or(i64::MAX))
    }

    /// The earliest timestamp a group's retention still shows (i64::MIN without one).
    fn retention_cutoff(&self, group: &Value) -> i64 {
        match group.get("retentionInDays").and_then(Value::as_i64) {
            Some(days) => self.now_ms() - days * DAY_MS,
            None => i64::MIN,
        }
    }

    pub(crate) fn put_log_events(
        &self,
        ctx: &RequestContext,
        input: PutLogEventsRequest,
    ) -> ApiResult<PutLogEventsResponse> {
        let group = input.log_group_name.as_str();
        let stream = input.log_stream_name.as_str();
        check_group_name(group, "logGroupName")?;
        check_stream_name(stream, "logStreamName")?;
        let g = self.group_record(ctx, group)?;
        self.stream_record(ctx, group, stream)?;
        let events: Vec<(i64, &str)> = input
            .log_events
            .iter()
            .map(|e| (e.timestamp, e.message.as_str()))
            .collect();
        if events.len() > MAX_EVENTS {
            return Err(invalid(format!(
                "The number of log events in a batch exceeds the limit of {MAX_EVENTS}."
            )));
        }
        if events.windows(2).any(|w| w[1].0 < w[0].0) {
            return Err(invalid(
                "Log events in a single PutLogEvents request must be in chronological order.",
            ));
        }
        let total: usize = events.iter().map(|(_, m)| event_size(m)).sum();
        if total > MAX_BATCH_BYTES {
            return Err(invalid(format!(
                "Upload too large: {total} bytes exceeds limit of {MAX_BATCH_BYTES}"
            )));
        }
        let now = self.now_ms();
        let too_old = now - 14 * DAY_MS;
        let expired = self.retention_cutoff(&g.value);
        let too_new = now + 2 * HOUR_MS;
        // The batch is in time order, so each kind of rejection is a run at one end.
        let too_old_end = events.iter().rposition(|e| e.0 < too_old);
        let expired_end = events.iter().rposition(|e| e.0 < expired);
        let too_new_start = events.iter().position(|e| e.0 > too_new);
        let first = too_old_end.max(expired_end).map_or(0, |i| i + 1);
        let last = too_new_start.unwrap_or(events.len());
        let valid = if first < last {
            &events[first..last]
        } else {
            &[][..]
        };
        if let (Some(a), Some(b)) = (valid.first(), valid.last()) {
            if b.0 - a.0 > DAY_MS {
                return Err(invalid(
                    "The batch of log events in a single PutLogEvents request cannot span more than 24 hours.",
                ));
            }
        }
        let s = sref(ctx, group, stream);
        let end = if valid.is_empty() {
            self.events.stats(&s).map_err(io_err)?.end
        } else {
            self.events.append(&s, valid, now).map_err(io_err)?
        };
        // A batch holds at most 10,000 events, so an index fits the model's integer.
        let index = |i: Option<usize>| i.map(|i| i as i32);
        let rejected = too_old_end.is_some() || expired_end.is_some() || too_new_start.is_some();
        Ok(PutLogEventsResponse {
            next_sequence_token: Some(sequence_token(end)),
            rejected_log_events_info: rejected.then(|| RejectedLogEventsInfo {
                too_old_log_event_end_index: index(too_old_end),
                expired_log_event_end_index: index(expired_end),
                too_new_log_event_start_index: index(too_new_start),
            }),
            rejected_entity_info: None,
        })
    }

    pub(crate) fn get_log_events(
        &self,
        ctx: &RequestContext,
        input: GetLogEventsRequest,
    ) -> ApiResult<GetLogEventsResponse> {
        let group = group_from(
            ctx,
            input.log_group_name.as_deref(),
            input.log_group_identifier.as_deref(),
        )?;
        let stream = input.log_stream_name.as_str();
        check_stream_name(stream, "logStreamName")?;
        let g = self.group_record(ctx, &group)?;
        self.stream_record(ctx, &group, stream)?;
        let token = match input.next_token.as_deref() {
            None => None,
            Some(t) => Some(Token::parse(t).ok_or_else(bad_token)?),
        };
        let (limit, lo, hi) = self.window(input.limit, input.start_time, input.end_time, &g.value);
        let in_range = |t: i64| t >= lo && t < hi;
        let s = sref(ctx, &group, stream);
        let head = input.start_from_head == Some(true);
        let forward = match token {
            Some(Token::Forward(_)) => true,
            Some(Token::Backward(_)) => false,
            None => head,
        };
        let mut page: Vec<StoredEvent> = vec![];
        let mut bytes = 0;
        let iter = if forward {
            let from = match token {
                Some(Token::Forward(p)) => Some(p),
                _ => None,
            };
            self.events.forward(&s, from)
        } else {
            let before = match token {
                Some(Token::Backward(p)) => Some(p),
                _ => None,
            };
            self.events.backward(&s, before)
        }
        .map_err(io_err)?;
        for e in iter {
            let e = e.map_err(io_err)?;
            if !in_range(e.timestamp) {
                continue;
            }
            let size = event_size(&e.message);
            if !page.is_empty() && bytes + size > MAX_BATCH_BYTES {
                break;
            }
            bytes += size;
            page.push(e);
            if page.len() >= limit {
                break;
            }
        }
        if !forward {
            page.reverse();
        }
        let (next_forward, next_backward) = match (page.first(), page.last()) {
            (Some(first), Some(last)) => (Token::Forward(last.end), Token::Backward(first.start)),
            _ => {
                // Nothing (more) in this direction: the same position comes back, which is
                // how clients know they reached the end.
                let at = match token {
                    Some(Token::Forward(p)) | Some(Token::Backward(p)) => p,
                    None if forward => Pos::default(),
                    None => self.events.stats(&s).map_err(io_err)?.end,
                };
                (Token::Forward(at), Token::Backward(at))
            }
        };
        let events = page
            .into_iter()
            .map(|e| OutputLogEvent {
                timestamp: Some(e.timestamp),
                message: Some(e.message),
                ingestion_time: Some(e.ingestion_time),
            })
            .collect();
        Ok(GetLogEventsResponse {
            events: Some(events),
            next_forward_token: Some(next_forward.render()),
            next_backward_token: Some(next_backward.render()),
        })
    }

    pub(crate) fn filter_log_events(
        &self,
        ctx: &RequestContext,
        input: FilterLogEventsRequest,
    ) -> ApiResult<FilterLogEventsResponse> {
        let group = group_from(
            ctx,
            input.log_group_name.as_deref(),
            input.log_group_identifier.as_deref(),
        )?;
        let g = self.group_record(ctx, &group)?;
        let names = input.log_stream_names.as_deref();
        let prefix = input.log_stream_name_prefix.as_deref();
        if names.is_some() && prefix.is_some() {
            return Err(invalid(
                "logStreamNames and logStreamNamePrefix are mutually exclusive parameters.",
            ));
        }
        let pattern =
            Pattern::parse(input.filter_pattern.as_deref().unwrap_or("")).map_err(invalid)?;
        let (limit, lo, hi) = self.window(input.limit, input.start_time, input.end_time, &g.value);
        // Where each stream resumes: the token is the cursor of every stream searched.
        let cursors: HashMap<String, Pos> = match input.next_token.as_deref() {
            None => HashMap::new(),
            Some(t) => decode_cursors(t).ok_or_else(bad_token)?,
        };
        let mut streams: Vec<String> = match names {
            Some(list) => {
                let mut v = vec![];
                for n in list {
                    check_stream_name(n, "logStreamNames")?;
                    if self
                        .store
                        .get(&stream_key(&ctx.account, &ctx.region, &group, n))
                        .is_some()
                    {
                        v.push(n.to_string());
                    }
                }
                v
            }
            None => {
                if let Some(p) = prefix {
                    check_stream_name(p, "logStreamNamePrefix")?;
                }
                let base = stream_prefix(&ctx.account, &ctx.region, &group);
                self.store
                    .list(&format!("{base}{}", prefix.unwrap_or("")))
                    .iter()
                    .filter_map(|r| r.value["logStreamName"].as_str().map(String::from))
                    .collect()
            }
        };
        streams.sort();
        streams.dedup();

        // A k-way merge by (timestamp, stream, position) over each stream's reader.
        let mut readers: Vec<EventIter> = Vec::with_capacity(streams.len());
        let mut heads: Vec<Option<StoredEvent>> = Vec::with_capacity(streams.len());
        let mut resume: Vec<Pos> = Vec::with_capacity(streams.len());
        let mut heap = BinaryHeap::new();
        let mut scanned: u64 = 0;
        for (i, name) in streams.iter().enumerate() {
            let from = cursors.get(name).copied();
            let mut it = self
                .events
                .forward(&sref(ctx, &group, name), from)
                .map_err(io_err)?;
            let head = it.next().transpose().map_err(io_err)?;
            resume.push(from.unwrap_or_default());
            if let Some(h) = &head {
                heap.push(Reverse((h.timestamp, i, h.start)));
            }
            readers.push(it);
            heads.push(head);
        }
        let mut out = vec![];
        let mut bytes = 0;
        while let Some(Reverse((_, i, _))) = heap.peek().copied() {
            if out.len() >= limit || scanned >= FILTER_SCAN_BYTES {
                break;
            }
            let e = heads[i].take().expect("a head for every heap entry");
            let size = event_size(&e.message);
            let wanted = e.timestamp >= lo
                && e.timestamp <= hi
                && (pattern.matches_all() || pattern.matches(&e.message));
            if wanted && !out.is_empty() && bytes + size > MAX_BATCH_BYTES {
                heads[i] = Some(e);
                break;
            }
            heap.pop();
            scanned += (e.end.offset.saturating_sub(e.start.offset)).max(1);
            resume[i] = e.end;
            if wanted {
                bytes += size;
                out.push(FilteredLogEvent {
                    event_id: Some(format!(
                        "{:016}{:020}{:020}",
                        stream_digits(&streams[i]),
                        e.start.segment,
                        e.start.offset
                    )),
                    log_stream_name: Some(streams[i].clone()),
                    timestamp: Some(e.timestamp),
                    message: Some(e.message),
                    ingestion_time: Some(e.ingestion_time),
                });
            }
            if let Some(next) = readers[i].next().transpose().map_err(io_err)? {
                heap.push(Reverse((next.timestamp, i, next.start)));
                heads[i] = Some(next);
            }
        }
        let next_token = if heap.is_empty() {
            None
        } else {
            let list: Vec<Value> = streams
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    let at = heads[i].as_ref().map_or(resume[i], |h| h.start);
                    json!([name, at.segment, at.offset])
                })
                .collect();
            Some(encode_token(&Value::Array(list).to_string()))
        };
        Ok(FilterLogEventsResponse {
            events: Some(out),
            searched_log_streams: Some(vec![]),
            next_token,
        })
    }
}

fn decode_cursors(token: &str) -> Option<HashMap<String, Pos>> {
    let v: Value = serde_json::from_str(&decode_token(token)?).ok()?;
    let mut out = HashMap::new();
    for c in v.as_array()? {
        let c = c.as_array()?;
        out.insert(
            c.first()?.as_str()?.to_string(),
            Pos {
                segment: u32::try_from(c.get(1)?.as_u64()?).ok()?,
                offset: c.get(2)?.as_u64()?,
            },
        );
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use serde_json::{json, Value};

    fn setup(f: &Fixture) {
        f.ok("CreateLogGroup", json!({"logGroupName": "g"}));
        f.ok(
            "CreateLogStream",
            json!({"logGroupName": "g", "logStreamName": "s"}),
        );
    }

    fn put(f: &Fixture, stream: &str, events: &[(i64, String)]) -> Value {
        let evs: Vec<Value> = events
            .iter()
            .map(|(t, m)| json!({"timestamp": t, "message": m}))
            .collect();
        f.ok(
            "PutLogEvents",
            json!({"logGroupName": "g", "logStreamName": stream, "logEvents": evs}),
        )
    }

    fn messages(v: &Value) -> Vec<String> {
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["message"].as_str().unwrap().to_string())
            .collect()
    }

    fn get(f: &Fixture, extra: Value) -> Value {
        let mut input = json!({"logGroupName": "g", "logStreamName": "s"});
        for (k, v) in extra.as_object().unwrap() {
            input[k] = v.clone();
        }
        f.ok("GetLogEvents", input)
    }

    #[test]
    fn put_then_get_from_head_and_tail() {
        let f = fixture();
        setup(&f);
        let now = f.now();
        let evs: Vec<(i64, String)> = (0..25).map(|i| (now - 1000 + i, format!("m{i}"))).collect();
        let r = put(&f, "s", &evs);
        assert_eq!(r["nextSequenceToken"].as_str().unwrap().len(), 56);
        assert!(r.get("rejectedLogEventsInfo").is_none());
        // Tail: the newest `limit`, oldest first.
        let tail = get(&f, json!({"limit": 10}));
        assert_eq!(messages(&tail)[0], "m15");
        assert_eq!(messages(&tail)[9], "m24");
        assert!(tail["events"][0]["ingestionTime"].as_i64().unwrap() >= now);
        // Head.
        let head = get(&f, json!({"limit": 10, "startFromHead": true}));
        assert_eq!(messages(&head)[0], "m0");
        // Page forward to the end: the same token comes back.
        let mut token = head["nextForwardToken"].as_str().unwrap().to_string();
        let mut seen = messages(&head);
        loop {
            let p = get(&f, json!({"limit": 10, "nextToken": token}));
            let next = p["nextForwardToken"].as_str().unwrap().to_string();
            seen.extend(messages(&p));
            if next == token {
                assert!(messages(&p).is_empty());
                break;
            }
            token = next;
        }
        let all: Vec<String> = (0..25).map(|i| format!("m{i}")).collect();
        assert_eq!(seen, all);
        // More events arrive: the end token now reads them.
        put(&f, "s", &[(now, "late".into())]);
        let p = get(&f, json!({"nextToken": token}));
        assert_eq!(messages(&p), ["late"]);
        // Page backward from the tail to the start.
        let tail = get(&f, json!({"limit": 10}));
        let mut token = tail["nextBackwardToken"].as_str().unwrap().to_string();
        assert!(token.starts_with("b/"));
        let mut back = messages(&tail);
        loop {
            let p = get(&f, json!({"limit": 10, "nextToken": token}));
            let next = p["nextBackwardToken"].as_str().unwrap().to_string();
            let mut m = messages(&p);
            m.extend(back);
            back = m;
            if next == token {
                break;
            }
            token = next;
        }
        let mut expected = all.clone();
        expected.push("late".into());
        assert_eq!(back, expected);
        // Bad tokens.
        for t in ["x", "f/12", "b/abc"] {
            let mut input = json!({"logGroupName": "g", "logStreamName": "s"});
            input["nextToken"] = json!(t);
            assert_eq!(
                f.err("GetLogEvents", input).code,
                "InvalidParameterException"
            );
        }
    }

    #[test]
    fn get_with_time_range_and_empty_stream() {
        let f = fixture();
        setup(&f);
        let e = get(&f, json!({}));
        assert_eq!(e["events"], json!([]));
        assert_eq!(
            e["nextForwardToken"].as_str().unwrap()[2..],
            e["nextBackwardToken"].as_str().unwrap()[2..]
        );
        let again = get(&f, json!({"nextToken": e["nextForwardToken"]}));
        assert_eq!(again["nextForwardToken"], e["nextForwardToken"]);
        let now = f.now();
        let evs: Vec<(i64, String)> = (0..10)
            .map(|i| (now - 100 + i * 10, format!("m{i}")))
            .collect();
        put(&f, "s", &evs);
        // startTime inclusive, endTime exclusive.
        let r = get(
            &f,
            json!({"startTime": now - 80, "endTime": now - 50, "startFromHead": true}),
        );
        assert_eq!(messages(&r), ["m2", "m3", "m4"]);
        let r = get(&f, json!({"startTime": now - 80, "endTime": now - 50}));
        assert_eq!(messages(&r), ["m2", "m3", "m4"]);
        // Missing things.
        assert_eq!(
            f.err(
                "GetLogEvents",
                json!({"logGroupName": "g", "logStreamName": "nope"})
            )
            .code,
            "ResourceNotFoundException"
        );
        assert_eq!(
            f.err(
                "GetLogEvents",
                json!({"logGroupName": "nope", "logStreamName": "s"})
            )
            .code,
            "ResourceNotFoundException"
        );
        assert_eq!(
            f.err("GetLogEvents", json!({"logStreamName": "s"})).code,
            "InvalidParameterException"
        );
        let by_arn = f.ok(
            "GetLogEvents",
            json!({"logGroupIdentifier": "arn:aws:logs:us-east-1:000000000000:log-group:g:*", "logStreamName": "s", "limit": 1}),
        );
        assert_eq!(messages(&by_arn), ["m9"]);
    }

    #[test]
    fn put_rules() {
        let f = fixture();
        setup(&f);
        let now = f.now();
        let bad = |events: Value| {
            f.err(
                "PutLogEvents",
                json!({"logGroupName": "g", "logStreamName": "s", "logEvents": events}),
            )
        };
        let e = bad(
            json!([{"timestamp": now, "message": "b"}, {"timestamp": now - 1, "message": "a"}]),
        );
        assert_eq!(e.code, "InvalidParameterException");
        assert!(e.message.contains("chronological"));
        let big = "x".repeat(600_000);
        let e =
            bad(json!([{"timestamp": now, "message": big}, {"timestamp": now, "message": big}]));
        assert!(e.message.contains("Upload too large"), "{e}");
        let e = bad(
            json!([{"timestamp": now - 25 * 3_600_000, "message": "a"}, {"timestamp": now, "message": "b"}]),
        );
        assert!(e.message.contains("24 hours"), "{e}");
        assert_eq!(bad(json!([])).code, "InvalidParameterException");
        assert_eq!(
            bad(json!([{"timestamp": now, "message": ""}])).code,
            "InvalidParameterException"
        );
        assert_eq!(
            f.err(
                "PutLogEvents",
                json!({"logGroupName": "g", "logStreamName": "nope", "logEvents": [{"timestamp": now, "message": "a"}]})
            )
            .code,
            "ResourceNotFoundException"
        );
        let many: Vec<Value> = (0..10_001)
            .map(|_| json!({"timestamp": now, "message": "a"}))
            .collect();
        assert_eq!(bad(Value::Array(many)).code, "InvalidParameterException");
        // Nothing above was stored.
        assert_eq!(get(&f, json!({}))["events"], json!([]));
        // Too old and too new are rejected, the rest stored; the sequence token is ignored.
        let r = f.ok(
            "PutLogEvents",
            json!({"logGroupName": "g", "logStreamName": "s", "sequenceToken": "whatever", "logEvents": [
                {"timestamp": now - 15 * 86_400_000i64, "message": "old"},
                {"timestamp": now, "message": "ok1"},
                {"timestamp": now + 1, "message": "ok2"},
                {"timestamp": now + 3 * 3_600_000, "message": "new"},
            ]}),
        );
        assert_eq!(
            r["rejectedLogEventsInfo"],
            json!({"tooOldLogEventEndIndex": 0, "tooNewLogEventStartIndex": 3})
        );
        assert_eq!(messages(&get(&f, json!({}))), ["ok1", "ok2"]);
        // Retention: older events are expired on the way in and hidden on the way out.
        f.ok(
            "PutRetentionPolicy",
            json!({"logGroupName": "g", "retentionInDays": 1}),
        );
        let r = put(
            &f,
            "s",
            &[
                (now - 2 * 86_400_000, "expired".into()),
                (now, "fresh".into()),
            ],
        );
        assert_eq!(
            r["rejectedLogEventsInfo"],
            json!({"expiredLogEventEndIndex": 0})
        );
        f.logs.clock.advance_ms(86_400_000 + 1000);
        let left = get(&f, json!({}));
        assert_eq!(messages(&left), Vec::<String>::new());
        f.ok("DeleteRetentionPolicy", json!({"logGroupName": "g"}));
        assert_eq!(messages(&get(&f, json!({}))), ["ok1", "ok2", "fresh"]);
    }

    #[test]
    fn retention_sweep_deletes_old_closed_segments() {
        let f = fixture();
        setup(&f);
        let now = f.now();
        let msg = "y".repeat((1 << 19) - 100);
        // Almost 1 MiB per batch: 70 batches roll past the 64 MiB segment.
        for i in 0..70 {
            put(
                &f,
                "s",
                &[(now - 1000 + i, msg.clone()), (now - 1000 + i, msg.clone())],
            );
        }
        let dir = f
            .logs
            .ensure_stream("000000000000", "us-east-1", "g", "s", false)
            .unwrap();
        let segs = || std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(segs(), 2);
        assert_eq!(f.logs.sweep_retention(), 0, "no retention policy");
        f.ok(
            "PutRetentionPolicy",
            json!({"logGroupName": "g", "retentionInDays": 1}),
        );
        assert_eq!(f.logs.sweep_retention(), 0, "nothing is old yet");
        f.logs.clock.advance_ms(2 * 86_400_000);
        assert_eq!(f.logs.sweep_retention(), 1);
        assert_eq!(segs(), 1);
    }

    #[test]
    fn filter_across_streams() {
        let f = fixture();
        setup(&f);
        f.ok(
            "CreateLogStream",
            json!({"logGroupName": "g", "logStreamName": "t"}),
        );
        f.ok(
            "CreateLogStream",
            json!({"logGroupName": "g", "logStreamName": "other"}),
        );
        let now = f.now();
        put(
            &f,
            "s",
            &[
                (now - 50, "ERROR disk full".into()),
                (now - 30, "INFO ok".into()),
                (now - 10, "WARN slow".into()),
            ],
        );
        put(
            &f,
            "t",
            &[
                (now - 40, "ERROR Exiting".into()),
                (now - 20, "INFO \"quoted\" thing".into()),
            ],
        );
        put(&f, "other", &[(now - 45, "ERROR elsewhere".into())]);
        let filter = |extra: Value| {
            let mut input = json!({"logGroupName": "g"});
            for (k, v) in extra.as_object().unwrap() {
                input[k] = v.clone();
            }
            f.ok("FilterLogEvents", input)
        };
        let all = filter(json!({}));
        assert_eq!(
            messages(&all),
            [
                "ERROR disk full",
                "ERROR elsewhere",
                "ERROR Exiting",
                "INFO ok",
                "INFO \"quoted\" thing",
                "WARN slow"
            ]
        );
        assert!(all["nextToken"].is_null());
        assert_eq!(all["events"][1]["logStreamName"], "other");
        assert_eq!(all["events"][0]["eventId"].as_str().unwrap().len(), 56);
        assert_eq!(
            messages(&filter(
                json!({"filterPattern": "ERROR -Exiting", "logStreamNames": ["s", "t"]})
            )),
            ["ERROR disk full"]
        );
        assert_eq!(
            messages(&filter(json!({"filterPattern": "?WARN ?Exiting"}))),
            ["ERROR Exiting", "WARN slow"]
        );
        assert_eq!(
            messages(&filter(
                json!({"filterPattern": "\"\\\"quoted\\\" thing\""})
            )),
            ["INFO \"quoted\" thing"]
        );
        assert_eq!(
            messages(&filter(json!({"logStreamNamePrefix": "o"}))),
            ["ERROR elsewhere"]
        );
        // Time range: both ends inclusive.
        assert_eq!(
            messages(&filter(json!({"startTime": now - 45, "endTime": now - 30}))),
            ["ERROR elsewhere", "ERROR Exiting", "INFO ok"]
        );
        // Paging with limit visits everything once, in order.
        let mut seen = vec![];
        let mut token: Option<String> = None;
        loop {
            let mut input = json!({"limit": 2});
            if let Some(t) = &token {
                input["nextToken"] = json!(t);
            }
            let p = filter(input);
            seen.extend(messages(&p));
            match p["nextToken"].as_str() {
                Some(t) => token = Some(t.to_string()),
                None => break,
            }
        }
        assert_eq!(seen, messages(&all));
        let e = f.err(
            "FilterLogEvents",
            json!({"logGroupName": "g", "filterPattern": "{ $.level = \"x\" }"}),
        );
        assert_eq!(e.code, "InvalidParameterException");
        assert!(e.message.contains("not supported"));
        assert_eq!(
            f.err(
                "FilterLogEvents",
                json!({"logGroupName": "g", "logStreamNames": ["s"], "logStreamNamePrefix": "s"})
            )
            .code,
            "InvalidParameterException"
        );
        assert_eq!(
            f.err(
                "FilterLogEvents",
                json!({"logGroupName": "g", "nextToken": "zz"})
            )
            .code,
            "InvalidParameterException"
        );
    }
}
