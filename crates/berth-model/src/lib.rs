//! berth-model: one typed home for what crosses a crate boundary. A record that more
//! than one crate reads or writes is a struct here, with its store key and ARN codecs
//! (parse and format, one place each), so no crate builds another's keys by `format!`.
//! Records keep fields they do not know (`extra`), so a newer record survives an older
//! reader. Events Berth emits use AWS's envelope, defined here once.

pub mod ecs;
pub mod elbv2;
pub mod event;
