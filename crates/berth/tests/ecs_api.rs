//! The ECS API through aws-sdk-ecs against a real berth.

mod common;

use aws_sdk_ecs::types::{
    Compatibility, ContainerDefinition, KeyValuePair, LaunchType, NetworkMode, PortMapping,
    SortOrder, Tag, TaskDefinitionStatus,
};
use common::{code, Server};

fn web_container(name: &str) -> ContainerDefinition {
    ContainerDefinition::builder()
        .name(name)
        .image("localhost:4566/web:1")
        .essential(true)
        .port_mappings(PortMapping::builder().container_port(8080).build())
        .environment(KeyValuePair::builder().name("MODE").value("prod").build())
        .build()
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_lifecycle() {
    let s = Server::start();
    let ecs = s.ecs();
    let created = ecs
        .create_cluster()
        .cluster_name("prod")
        .tags(Tag::builder().key("team").value("web").build())
        .send()
        .await
        .unwrap();
    let c = created.cluster().unwrap();
    assert_eq!(
        c.cluster_arn(),
        Some("arn:aws:ecs:us-east-1:000000000000:cluster/prod")
    );
    assert_eq!(c.status(), Some("ACTIVE"));

    // Idempotent create returns the same cluster.
    let again = ecs
        .create_cluster()
        .cluster_name("prod")
        .send()
        .await
        .unwrap();
    assert_eq!(again.cluster().unwrap().cluster_arn(), c.cluster_arn());

    let d = ecs
        .describe_clusters()
        .clusters("prod")
        .clusters("nope")
        .include(aws_sdk_ecs::types::ClusterField::Tags)
        .send()
        .await
        .unwrap();
    assert_eq!(d.clusters().len(), 1);
    assert_eq!(d.clusters()[0].tags()[0].value(), Some("web"));
    assert_eq!(d.failures()[0].reason(), Some("MISSING"));
    assert_eq!(
        d.failures()[0].arn(),
        Some("arn:aws:ecs:us-east-1:000000000000:cluster/nope")
    );

    // Pagination over several clusters visits each once.
    for i in 0..5 {
        ecs.create_cluster()
            .cluster_name(format!("c{i}"))
            .send()
            .await
            .unwrap();
    }
    let mut seen = vec![];
    let mut token = None;
    loop {
        let page = ecs
            .list_clusters()
            .max_results(2)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        assert!(page.cluster_arns().len() <= 2);
        seen.extend(page.cluster_arns().iter().cloned());
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(seen.len(), 6);

    let err = ecs
        .list_clusters()
        .max_results(101)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err.into_service_error()), "InvalidParameterException");

    // Delete makes it INACTIVE: still describable, no longer listed.
    ecs.delete_cluster().cluster("prod").send().await.unwrap();
    let d = ecs
        .describe_clusters()
        .clusters("prod")
        .send()
        .await
        .unwrap();
    assert_eq!(d.clusters()[0].status(), Some("INACTIVE"));
    let l = ecs.list_clusters().send().await.unwrap();
    assert!(!l.cluster_arns().iter().any(|a| a.ends_with("/prod")));
    let err = ecs
        .delete_cluster()
        .cluster("prod")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err.into_service_error()), "ClusterNotFoundException");
}

#[tokio::test(flavor = "multi_thread")]
async fn accounts_and_regions_are_separate() {
    let s = Server::start();
    s.ecs()
        .create_cluster()
        .cluster_name("shared-name")
        .send()
        .await
        .unwrap();
    let other_region = s.ecs_as("AKIDEXAMPLE", "secret", "eu-west-1");
    assert!(other_region
        .list_clusters()
        .send()
        .await
        .unwrap()
        .cluster_arns()
        .is_empty());
    let other_account = s.ecs_as("111122223333", "secret", "us-east-1");
    let c = other_account
        .create_cluster()
        .cluster_name("shared-name")
        .send()
        .await
        .unwrap();
    assert_eq!(
        c.cluster().unwrap().cluster_arn(),
        Some("arn:aws:ecs:us-east-1:111122223333:cluster/shared-name")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn task_definitions_register_describe_list_deregister_delete() {
    let s = Server::start();
    let ecs = s.ecs();
    let reg = |family: &'static str| {
        ecs.register_task_definition()
            .family(family)
            .requires_compatibilities(Compatibility::Fargate)
            .network_mode(NetworkMode::Awsvpc)
            .cpu("256")
            .memory("512")
            .container_definitions(web_container("web"))
    };
    let first = reg("web").send().await.unwrap();
    let td = first.task_definition().unwrap();
    assert_eq!(td.revision(), 1);
    assert_eq!(td.status(), Some(&TaskDefinitionStatus::Active));
    assert!(td.compatibilities().contains(&Compatibility::Fargate));
    let c = &td.container_definitions()[0];
    // awsvpc: hostPort mirrors containerPort; protocol defaults to tcp.
    assert_eq!(c.port_mappings()[0].host_port(), Some(8080));
    assert_eq!(
        c.port_mappings()[0].protocol().map(|p| p.as_str()),
        Some("tcp")
    );
    assert_eq!(
        reg("web")
            .send()
            .await
            .unwrap()
            .task_definition()
            .unwrap()
            .revision(),
        2
    );
    reg("api").send().await.unwrap();

    // Describe by family (latest), family:revision and ARN.
    let latest = ecs
        .describe_task_definition()
        .task_definition("web")
        .send()
        .await
        .unwrap();
    assert_eq!(latest.task_definition().unwrap().revision(), 2);
    let one = ecs
        .describe_task_definition()
        .task_definition("web:1")
        .send()
        .await
        .unwrap();
    assert_eq!(one.task_definition().unwrap().revision(), 1);
    let by_arn = ecs
        .describe_task_definition()
        .task_definition("arn:aws:ecs:us-east-1:000000000000:task-definition/web:2")
        .send()
        .await
        .unwrap();
    assert_eq!(by_arn.task_definition().unwrap().family(), Some("web"));
    let err = ecs
        .describe_task_definition()
        .task_definition("web:9")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err.into_service_error()), "ClientException");

    let desc = ecs
        .list_task_definitions()
        .family_prefix("web")
        .sort(SortOrder::Desc)
        .send()
        .await
        .unwrap();
    assert_eq!(
        desc.task_definition_arns(),
        [
            "arn:aws:ecs:us-east-1:000000000000:task-definition/web:2",
            "arn:aws:ecs:us-east-1:000000000000:task-definition/web:1"
        ]
    );
    let fams = ecs.list_task_definition_families().send().await.unwrap();
    assert_eq!(fams.families(), ["api", "web"]);

    // Deregister then delete revision 1.
    let err = ecs
        .deregister_task_definition()
        .task_definition("web")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err.into_service_error()), "ClientException");
    let dereg = ecs
        .deregister_task_definition()
        .task_definition("web:1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        dereg.task_definition().unwrap().status(),
        Some(&TaskDefinitionStatus::Inactive)
    );
    let inactive = ecs
        .list_task_definitions()
        .status(TaskDefinitionStatus::Inactive)
        .send()
        .await
        .unwrap();
    assert_eq!(inactive.task_definition_arns().len(), 1);
    let active = ecs
        .list_task_definitions()
        .family_prefix("web")
        .send()
        .await
        .unwrap();
    assert_eq!(
        active.task_definition_arns(),
        ["arn:aws:ecs:us-east-1:000000000000:task-definition/web:2"]
    );
    let del = ecs
        .delete_task_definitions()
        .task_definitions("web:1")
        .task_definitions("web:2")
        .send()
        .await
        .unwrap();
    assert_eq!(del.task_definitions().len(), 1);
    assert_eq!(del.failures().len(), 1, "web:2 is still ACTIVE");
    assert_eq!(
        del.task_definitions()[0].status(),
        Some(&TaskDefinitionStatus::DeleteInProgress)
    );

    // A revision number is never reused.
    assert_eq!(
        reg("web")
            .send()
            .await
            .unwrap()
            .task_definition()
            .unwrap()
            .revision(),
        3
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn task_definition_rules() {
    let s = Server::start();
    let ecs = s.ecs();
    let bad_pair = ecs
        .register_task_definition()
        .family("x")
        .requires_compatibilities(Compatibility::Fargate)
        .network_mode(NetworkMode::Awsvpc)
        .cpu("256")
        .memory("4096")
        .container_definitions(web_container("web"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&bad_pair), "ClientException");
    assert!(
        bad_pair
            .to_string()
            .contains("No Fargate configuration exists")
            || format!("{bad_pair:?}").contains("No Fargate configuration exists")
    );

    let bridge_on_fargate = ecs
        .register_task_definition()
        .family("x")
        .requires_compatibilities(Compatibility::Fargate)
        .network_mode(NetworkMode::Bridge)
        .cpu("256")
        .memory("512")
        .container_definitions(web_container("web"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(&bridge_on_fargate.into_service_error()),
        "ClientException"
    );

    let dup = ecs
        .register_task_definition()
        .family("x")
        .memory("512")
        .container_definitions(web_container("web"))
        .container_definitions(web_container("web"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&dup.into_service_error()), "ClientException");

    let no_essential = ecs
        .register_task_definition()
        .family("x")
        .memory("512")
        .container_definitions(
            ContainerDefinition::builder()
                .name("a")
                .image("busybox")
                .essential(false)
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&no_essential.into_service_error()), "ClientException");

    let mismatched_ports = ecs
        .register_task_definition()
        .family("x")
        .network_mode(NetworkMode::Awsvpc)
        .memory("512")
        .container_definitions(
            ContainerDefinition::builder()
                .name("a")
                .image("busybox")
                .port_mappings(
                    PortMapping::builder()
                        .container_port(80)
                        .host_port(8080)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(&mismatched_ports.into_service_error()),
        "ClientException"
    );

    let no_memory = ecs
        .register_task_definition()
        .family("x")
        .container_definitions(
            ContainerDefinition::builder()
                .name("a")
                .image("busybox")
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&no_memory.into_service_error()), "ClientException");

    // None of the rejected registrations left anything behind.
    assert!(ecs
        .list_task_definition_families()
        .send()
        .await
        .unwrap()
        .families()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn run_task_refusals_record_nothing() {
    let s = Server::start();
    let ecs = s.ecs();
    ecs.create_cluster().send().await.unwrap();
    ecs.register_task_definition()
        .family("job")
        .memory("128")
        .container_definitions(web_container("main"))
        .send()
        .await
        .unwrap();
    // No launch type and no strategy means EC2, as in AWS.
    let err = ecs
        .run_task()
        .task_definition("job")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&err), "InvalidParameterException");
    assert!(format!("{err:?}").contains("No Container Instances were found in your cluster."));

    let err = ecs
        .run_task()
        .cluster("nope")
        .task_definition("job")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err.into_service_error()), "ClusterNotFoundException");
    let err = ecs
        .run_task()
        .task_definition("missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err.into_service_error()), "ClientException");
    let err = ecs
        .run_task()
        .task_definition("job")
        .launch_type(LaunchType::Fargate)
        .send()
        .await
        .unwrap_err();
    // job is not Fargate-compatible (bridge mode, no task cpu).
    assert_eq!(code(&err.into_service_error()), "ClientException");

    let err = ecs
        .run_task()
        .task_definition("job")
        .count(11)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err.into_service_error()), "InvalidParameterException");

    let tasks = ecs.list_tasks().send().await.unwrap();
    assert!(
        tasks.task_arns().is_empty(),
        "no task may be recorded by a refused RunTask"
    );
    let d = ecs
        .describe_tasks()
        .tasks("0123456789abcdef")
        .send()
        .await
        .unwrap();
    assert_eq!(d.failures()[0].reason(), Some("MISSING"));
    let err = ecs
        .stop_task()
        .task("0123456789abcdef")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err.into_service_error()), "InvalidParameterException");
}

#[tokio::test(flavor = "multi_thread")]
async fn tags_settings_capacity_providers() {
    let s = Server::start();
    let ecs = s.ecs();
    let arn = ecs
        .create_cluster()
        .cluster_name("t")
        .send()
        .await
        .unwrap()
        .cluster()
        .unwrap()
        .cluster_arn()
        .unwrap()
        .to_string();
    ecs.tag_resource()
        .resource_arn(&arn)
        .tags(Tag::builder().key("a").value("1").build())
        .tags(Tag::builder().key("b").value("2").build())
        .send()
        .await
        .unwrap();
    ecs.untag_resource()
        .resource_arn(&arn)
        .tag_keys("a")
        .send()
        .await
        .unwrap();
    let tags = ecs
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tags().len(), 1);
    assert_eq!(tags.tags()[0].key(), Some("b"));
    let err = ecs
        .tag_resource()
        .resource_arn(&arn)
        .tags(Tag::builder().key("aws:reserved").value("x").build())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err.into_service_error()), "InvalidParameterException");

    use aws_sdk_ecs::types::SettingName;
    ecs.put_account_setting()
        .name(SettingName::ContainerInsights)
        .value("enabled")
        .send()
        .await
        .unwrap();
    let listed = ecs
        .list_account_settings()
        .name(SettingName::ContainerInsights)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.settings()[0].value(), Some("enabled"));
    let effective = ecs
        .list_account_settings()
        .effective_settings(true)
        .send()
        .await
        .unwrap();
    assert!(effective.settings().len() >= 5 || effective.next_token().is_some());
    let err = ecs
        .put_account_setting()
        .name(SettingName::ContainerInsights)
        .value("maybe")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err.into_service_error()), "InvalidParameterException");

    let cps = ecs.describe_capacity_providers().send().await.unwrap();
    let names: Vec<_> = cps
        .capacity_providers()
        .iter()
        .filter_map(|c| c.name())
        .collect();
    assert_eq!(names, ["FARGATE", "FARGATE_SPOT"]);
    ecs.put_cluster_capacity_providers()
        .cluster("t")
        .capacity_providers("FARGATE")
        .default_capacity_provider_strategy(
            aws_sdk_ecs::types::CapacityProviderStrategyItem::builder()
                .capacity_provider("FARGATE")
                .weight(1)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let err = ecs
        .put_cluster_capacity_providers()
        .cluster("t")
        .capacity_providers("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err.into_service_error()), "InvalidParameterException");
}

#[tokio::test(flavor = "multi_thread")]
async fn unimplemented_operations_say_so() {
    let s = Server::start();
    let err = s.ecs().list_daemons().send().await.unwrap_err();
    let raw = err.raw_response().map(|r| r.status().as_u16());
    assert_eq!(raw, Some(501));
    assert_eq!(code(&err.into_service_error()), "NotImplemented");
}
