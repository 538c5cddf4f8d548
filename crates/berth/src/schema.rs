//! The stored records' schema versions, newest last. A step that changes how a record is
//! stored goes here, with a test against tests/fixtures (tests/e2e/upgrade.sh).

use berth_store::migrate::Migration;

pub fn migrations() -> Vec<Migration> {
    vec![Migration {
        to: 1,
        // Records are stored as they were before versions; from here a change is a step.
        what: "versioned schema",
        plan: |_| Ok((vec![], vec![])),
    }]
}
