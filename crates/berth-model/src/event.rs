//! Events in AWS's envelope (`version`, `id`, `detail-type`, `source`, `account`, `time`,
//! `region`, `resources`, `detail`), and the one internal call every service emits them
//! through. Delivery (rules, targets) belongs to EventBridge, which subscribes here; each
//! service defines its detail shapes beside its records.

use serde::{Deserialize, Serialize};
use std::sync::{Arc, RwLock};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub version: String,
    pub id: String,
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub source: String,
    pub account: String,
    /// ISO 8601 to the second, as EventBridge writes it: `2026-12-06T10:00:00Z`.
    pub time: String,
    pub region: String,
    pub resources: Vec<String>,
    pub detail: serde_json::Value,
}

impl Event {
    /// A new event with a fresh id, stamped at `now` (seconds since the epoch, from the
    /// injectable clock).
    pub fn new(
        source: &str,
        detail_type: &str,
        account: &str,
        region: &str,
        now: f64,
        resources: Vec<String>,
        detail: serde_json::Value,
    ) -> Event {
        let mut time = berth_wire::time::format_iso8601(now.floor());
        time.replace_range(19.., "Z"); // no fractional seconds
        Event {
            version: "0".into(),
            id: uuid::Uuid::new_v4().to_string(),
            detail_type: detail_type.into(),
            source: source.into(),
            account: account.into(),
            time,
            region: region.into(),
            resources,
            detail,
        }
    }
}

/// Who receives events (EventBridge's rules, tests).
pub trait EventSink: Send + Sync {
    fn deliver(&self, event: &Event);
}

/// The internal publish call. Cheap to clone; sinks are called in order, synchronously,
/// so a sink that does slow work queues it.
#[derive(Clone, Default)]
pub struct Events {
    sinks: Arc<RwLock<Vec<Arc<dyn EventSink>>>>,
}

impl Events {
    pub fn subscribe(&self, sink: Arc<dyn EventSink>) {
        self.sinks.write().expect("event sinks lock").push(sink);
    }

    pub fn publish(&self, event: Event) {
        for s in self.sinks.read().expect("event sinks lock").iter() {
            s.deliver(&event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Collect(Mutex<Vec<Event>>);
    impl EventSink for Collect {
        fn deliver(&self, event: &Event) {
            self.0.lock().unwrap().push(event.clone());
        }
    }

    #[test]
    fn envelope_is_awss_and_reaches_every_sink() {
        let events = Events::default();
        let a = Arc::new(Collect(Mutex::new(vec![])));
        let b = Arc::new(Collect(Mutex::new(vec![])));
        events.subscribe(a.clone());
        events.subscribe(b.clone());
        let e = Event::new(
            "aws.ecs",
            "ECS Task State Change",
            "000000000000",
            "us-east-1",
            1_795_677_206.7,
            vec!["arn:aws:ecs:us-east-1:000000000000:task/c/1".into()],
            serde_json::json!({"lastStatus": "RUNNING"}),
        );
        events.publish(e.clone());
        assert_eq!(a.0.lock().unwrap().as_slice(), std::slice::from_ref(&e));
        assert_eq!(b.0.lock().unwrap().len(), 1);
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["detail-type"], "ECS Task State Change");
        assert_eq!(v["time"], "2026-11-26T07:13:26Z");
        assert_eq!(v["version"], "0");
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 9, "{keys:?}");
    }
}
