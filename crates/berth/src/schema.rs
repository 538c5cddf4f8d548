//! The stored records' schema versions, newest last. A step that changes how a record is
//! stored goes here, with a test against tests/fixtures (tests/e2e/upgrade.sh).

use berth_model::ecs::{is_stopped, launch_definition, TaskDefinitionId, TaskId, TaskPrivate};
use berth_store::migrate::{Migration, StepWrites};
use berth_store::{Cond, Op, Store};

pub fn migrations() -> Vec<Migration> {
    vec![
        Migration {
            to: 1,
            // Records are stored as they were before versions; from here a change is a step.
            what: "versioned schema",
            plan: |_| Ok((vec![], vec![])),
        },
        Migration {
            to: 2,
            what: "unfinished tasks carry their task definition",
            plan: tasks_carry_their_definition,
        },
    ]
}

/// The node launches a task from its record alone (`_berth.definition`, written by
/// RunTask since schema 2): give tasks that are not yet STOPPED the definition their
/// ARN names. One whose definition is gone is left without: it fails at launch, as it
/// did before.
fn tasks_carry_their_definition(store: &dyn Store) -> StepWrites {
    let mut conds = vec![];
    let mut ops = vec![];
    for r in store.list("/") {
        if TaskId::parse_key(&r.key).is_none() || is_stopped(&r.value) {
            continue;
        }
        let mut private = TaskPrivate::of(&r.value);
        if private.definition.is_some() {
            continue;
        }
        let Some(td) = r.value["taskDefinitionArn"]
            .as_str()
            .and_then(TaskDefinitionId::parse_arn)
            .and_then(|id| store.get(&id.key()))
        else {
            continue;
        };
        private.definition = Some(launch_definition(&td.value));
        let mut task = (*r.value).clone();
        private.store_in(&mut task);
        conds.push(Cond::Revision(r.key.clone(), r.revision));
        ops.push(Op::Put(r.key.clone(), task));
    }
    Ok((conds, ops))
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_store::SqliteStore;
    use serde_json::json;

    #[test]
    fn unfinished_tasks_get_their_definition_and_nothing_else_changes() {
        let d = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&d.path().join("s.db")).unwrap();
        let td = json!({"family": "web", "revision": 2, "containerDefinitions": [{"name": "a"}], "tags": [{"key": "k"}]});
        s.put("/1/r/ecs/taskdef/web/0000000002", td).unwrap();
        let arn = "arn:aws:ecs:r:1:task-definition/web:2";
        let running = json!({"taskDefinitionArn": arn, "lastStatus": "RUNNING", "_berth": {"ip": "10.0.0.2"}});
        let stopped = json!({"taskDefinitionArn": arn, "lastStatus": "STOPPED"});
        let orphan = json!({"taskDefinitionArn": "arn:aws:ecs:r:1:task-definition/gone:1", "lastStatus": "PROVISIONING"});
        s.put("/1/r/ecs/task/c/a", running).unwrap();
        s.put("/1/r/ecs/task/c/b", stopped.clone()).unwrap();
        s.put("/1/r/ecs/task/c/c", orphan.clone()).unwrap();
        assert_eq!(
            berth_store::migrate::migrate(&s, &migrations()).unwrap(),
            (0, 2)
        );
        let a = s.get("/1/r/ecs/task/c/a").unwrap().value;
        assert_eq!(
            a["_berth"],
            json!({"ip": "10.0.0.2", "definition": {"family": "web", "revision": 2, "containerDefinitions": [{"name": "a"}]}})
        );
        assert_eq!(*s.get("/1/r/ecs/task/c/b").unwrap().value, stopped);
        assert_eq!(*s.get("/1/r/ecs/task/c/c").unwrap().value, orphan);
    }
}
