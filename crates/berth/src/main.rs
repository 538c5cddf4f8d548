//! The `berth` binary: parses the command line and wires the crates together.

mod auth;
mod edge;
mod instance;
mod schema;
mod unserved;

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "An AWS-compatible container platform in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start: the size of `UpArgs` does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Start the server: every AWS API on one port, state in the data directory.
    Up(UpArgs),
    /// Stop the tasks of a data directory, then the server serving it.
    Down(DownArgs),
    /// One task's supervisor, started by `berth up` (not for direct use).
    #[command(hide = true)]
    Shim { dir: PathBuf },
}

#[derive(clap::Args, Clone)]
pub struct DownArgs {
    /// The data directory of the server to stop (default as for `berth up`).
    #[arg(long, env = "BERTH_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(clap::Args, Clone)]
pub struct UpArgs {
    /// Address to serve every API on.
    #[arg(long, env = "BERTH_LISTEN", default_value = "127.0.0.1:4566")]
    listen: SocketAddr,
    /// Where state lives (default: $XDG_DATA_HOME/berth or ~/.local/share/berth).
    #[arg(long, env = "BERTH_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The account used when a request's access key does not name one.
    #[arg(long, env = "BERTH_ACCOUNT_ID", default_value = "000000000000")]
    account_id: String,
    /// Require requests to be SigV4-signed with the configured credentials.
    #[arg(long, env = "BERTH_ENFORCE_AUTH")]
    enforce_auth: bool,
    /// Access key id accepted when auth is enforced.
    #[arg(long, env = "BERTH_ACCESS_KEY_ID", default_value = "test")]
    access_key_id: String,
    /// Secret access key accepted when auth is enforced.
    #[arg(
        long,
        env = "BERTH_SECRET_ACCESS_KEY",
        default_value = "test",
        hide_env_values = true
    )]
    secret_access_key: String,
    /// Host (and port) put in repositoryUri; default: ACCOUNT.dkr.ecr.REGION.localhost:PORT
    /// when this machine resolves that name, else localhost:PORT.
    #[arg(long, env = "BERTH_REGISTRY_HOST")]
    registry_host: Option<String>,
    /// Seconds a registry push may take: unreferenced blobs are kept this long before
    /// garbage collection removes them, and new untagged images this long before a
    /// lifecycle policy expires them (0: at once).
    #[arg(long, env = "BERTH_REGISTRY_GC_GRACE", default_value_t = 3600)]
    registry_gc_grace: u64,
    /// Where registry blobs live: `local` (DATA_DIR/registry) or `s3://BUCKET[/PREFIX]`, an
    /// S3-compatible bucket several hosts can share (credentials from AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY, region from AWS_REGION). Upload sessions stay on this host.
    #[arg(long, env = "BERTH_REGISTRY_STORE", default_value = "local")]
    registry_store: String,
    /// The S3-compatible endpoint for an `s3://` registry store (another Berth, MinIO...);
    /// AWS's own when not given.
    #[arg(long, env = "BERTH_REGISTRY_S3_ENDPOINT")]
    registry_s3_endpoint: Option<String>,
    /// Extra CA certificates (PEM) trusted when pulling images from HTTPS registries.
    #[arg(long, env = "BERTH_REGISTRY_CA")]
    registry_ca: Option<PathBuf>,
    /// A registry (HOST or HOST:PORT) to pull images from over plain HTTP although it is
    /// not on loopback (repeatable; the variable takes a comma-separated list).
    #[arg(
        long = "insecure-registry",
        env = "BERTH_INSECURE_REGISTRIES",
        value_delimiter = ','
    )]
    insecure_registries: Vec<String>,
    /// Let tests read and move Berth's clock over HTTP (`GET /_berth/clock`,
    /// `POST /_berth/clock {"advance":"15m"}`), so schedules, cooldowns, expiries and
    /// retention are tested without waiting. Never for production: anyone who can reach
    /// the port can move time forward. SigV4 checks keep the real clock.
    #[arg(long, env = "BERTH_TEST_CLOCK", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    test_clock: bool,
    /// The OCI runtime that creates containers: crun or runc, by name (looked up on PATH)
    /// or path. `auto` takes crun when installed (it starts containers faster, see
    /// BENCHMARKS.md), else runc.
    #[arg(long, env = "BERTH_OCI_RUNTIME", default_value = "auto")]
    oci_runtime: PathBuf,
    /// Turn on cgroup2's favordynmods (host-wide; on recent kernels until reboot): a
    /// container start then no longer waits for an RCU grace period when its processes
    /// move into their cgroups (6-14 ms here). Forks and exits pay slightly more.
    #[arg(long, env = "BERTH_CGROUP_FAVORDYNMODS", default_value_t = true, action = clap::ArgAction::Set)]
    cgroup_favordynmods: bool,
    /// The range bridge-mode tasks take their addresses from, on Berth's bridge beside
    /// the VPC subnets of awsvpc tasks. It must not overlap the host's own routes.
    #[arg(long, env = "BERTH_BRIDGE_CIDR", default_value = "172.29.0.0/16", value_parser = parse_cidr)]
    bridge_cidr: berth_net::Cidr,
    /// Register this host as a container instance of CLUSTER (in the default account and
    /// us-east-1) as soon as the cluster exists, so EC2 launch type tasks run here
    /// (repeatable; the variable takes a comma-separated list).
    #[arg(
        long = "register-instance",
        env = "BERTH_REGISTER_INSTANCE",
        value_delimiter = ',',
        value_name = "CLUSTER"
    )]
    register_instances: Vec<String>,
    /// Also bind every load balancer listener on this host address (for users who cannot
    /// route to the Berth network). Two load balancers with a listener on the same port
    /// cannot both be published.
    #[arg(long, env = "BERTH_PUBLISH_LB")]
    publish_lb: Option<std::net::Ipv4Addr>,
    /// Threads serving application load balancers' listeners (default: one per core).
    #[arg(long, env = "BERTH_LB_THREADS", value_parser = clap::value_parser!(u16).range(1..=256))]
    lb_threads: Option<u16>,
    /// Log filter (tracing's EnvFilter syntax).
    #[arg(long, env = "BERTH_LOG", default_value = "info")]
    log: String,
    /// Connections the API's port holds open at once; beyond, new ones wait to be accepted.
    #[arg(long, env = "BERTH_MAX_CONNECTIONS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: u32,
    /// Seconds a connection may take to send a request's headers, the idle wait between
    /// requests on a kept-alive connection included (ALB's idle timeout is 60 too).
    #[arg(long, env = "BERTH_IDLE_TIMEOUT", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=4000))]
    idle_timeout: u64,
    /// Seconds a stopped task stays describable before it is deleted (ECS keeps stopped
    /// tasks about an hour). Counted on Berth's clock, which `--test-clock` moves.
    #[arg(long, env = "BERTH_STOPPED_TASK_RETENTION", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(0..=31_536_000))]
    stopped_task_retention: u64,
}

/// Each connection is a file descriptor: raise the soft limit to the hard one (the
/// common soft default of 1024 would cap the edge far below --max-connections), and say
/// if even that is below what the flag asks.
fn raise_open_files_limit(max_connections: u32) {
    let mut l: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out-parameter; setrlimit only raises the soft limit to the hard.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } != 0 {
        return;
    }
    if l.rlim_cur < l.rlim_max {
        l.rlim_cur = l.rlim_max;
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &l) };
    }
    let wanted = u64::from(max_connections) + 1024;
    if (l.rlim_cur as u64) < wanted {
        tracing::warn!(open_files = l.rlim_cur, max_connections, "the open-files limit is below --max-connections plus Berth's own files; raise it (ulimit -Hn, or LimitNOFILE= under systemd)");
    }
}

fn parse_cidr(s: &str) -> Result<berth_net::Cidr, String> {
    berth_net::Cidr::parse(s)
        .filter(|c| c.is_network() && (8..=28).contains(&c.len))
        .ok_or_else(|| format!("{s} is not a network range like 172.29.0.0/16 (prefix 8 to 28)"))
}

fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("berth");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/berth")
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Shim { dir } => {
            let code = berth_runtime::shim::run(&dir, &open_log_sink);
            std::process::ExitCode::from(code as u8)
        }
        Command::Down(args) => {
            let dir = args.data_dir.unwrap_or_else(default_data_dir);
            // The server first, so no service scheduler starts tasks in place of those
            // stopped next; its next start records them STOPPED.
            let msg = match instance::stop(&dir, std::time::Duration::from_secs(30)) {
                Ok(msg) => msg,
                Err(e) => {
                    eprintln!("berth: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            };
            println!("{msg}");
            let mut report = |said: Result<String, String>| match said {
                Ok(s) => println!("{s}"),
                Err(e) => eprintln!("berth: {e}"),
            };
            if let Err(e) = berth_node::host::tear_down(&dir, &mut report) {
                eprintln!("berth: {e}");
                return std::process::ExitCode::FAILURE;
            }
            std::process::ExitCode::SUCCESS
        }
        Command::Up(args) => {
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log))
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .init();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                // Writes wait on fsync in the blocking pool; bound it so a burst cannot
                // spawn hundreds of threads.
                .max_blocking_threads(32)
                .enable_all()
                .build()
                .expect("tokio runtime");
            match runtime.block_on(up(args)) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("berth: {e}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
    }
}

/// The supervisor's sink for a container's output: its awslogs stream.
fn open_log_sink(dir: &std::path::Path) -> std::io::Result<Box<dyn berth_runtime::shim::LineSink>> {
    struct Sink(berth_logs::segments::StreamAppender);
    impl berth_runtime::shim::LineSink for Sink {
        fn line(&mut self, timestamp_ms: i64, line: &str) {
            if let Err(e) = self.0.append(timestamp_ms, line) {
                eprintln!("berth shim: cannot append to the log stream: {e}");
            }
        }
        fn flush(&mut self) {
            let _ = self.0.sync();
        }
    }
    Ok(Box::new(Sink(berth_logs::segments::StreamAppender::open(
        dir,
    )?)))
}

async fn up(args: UpArgs) -> Result<(), String> {
    if args.account_id.len() != 12 || !args.account_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "--account-id must be 12 digits, got {:?}",
            args.account_id
        ));
    }
    raise_open_files_limit(args.max_connections);
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    std::fs::create_dir_all(&data_dir)
        .map_err(|e| format!("cannot create data directory {}: {e}", data_dir.display()))?;
    let _instance = instance::claim(&data_dir)?;
    let store =
        berth_store::SqliteStore::open(&data_dir.join("state.db")).map_err(|e| e.to_string())?;
    let store: Arc<dyn berth_store::Store> = Arc::new(store);
    match berth_store::migrate::migrate(store.as_ref(), &schema::migrations())? {
        (from, to) if from != to => {
            tracing::info!(from, to, "migrated the stored records' schema")
        }
        _ => {}
    }
    let clock = berth_wire::Clock::default();
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let blobs = open_blob_store(&args, &data_dir.join("registry"))?;
    let token_key = registry_token_key(&data_dir)
        .map_err(|e| format!("cannot keep the registry's token key: {e}"))?;
    let registry = Arc::new(berth_registry::Registry {
        store: store.clone(),
        blobs,
        clock: clock.clone(),
        default_account: args.account_id.clone(),
        registry_host: args
            .registry_host
            .clone()
            .unwrap_or_else(|| default_registry_host(&args.account_id, local.port())),
        token_secret: token_key.clone(),
        require_auth: args.enforce_auth,
        hashers: Default::default(),
        blob_writes: Default::default(),
    });
    let logs = Arc::new(berth_logs::Logs::new(
        store.clone(),
        clock.clone(),
        data_dir.join("logs"),
    ));
    let s3 = Arc::new(
        berth_s3::S3::open(store.clone(), clock.clone(), &data_dir.join("s3"))
            .map_err(|e| format!("cannot open the S3 object directory: {e}"))?,
    );
    let ecs = Arc::new(
        berth_ecs::Ecs::new(store.clone(), clock.clone())
            .retaining_stopped_tasks(args.stopped_task_retention),
    );
    // Services: the scheduler keeps their tasks at the desired count.
    berth_ecs::spawn_scheduler(ecs.clone());
    let clusters: Vec<String> = args
        .register_instances
        .iter()
        .filter(|c| !c.is_empty())
        .cloned()
        .collect();
    if !clusters.is_empty() {
        let id = local_instance_id(&data_dir)
            .map_err(|e| format!("cannot keep this host's instance id: {e}"))?;
        tokio::spawn(register_instances(
            ecs.clone(),
            store.clone(),
            args.account_id.clone(),
            clusters,
            id,
        ));
    }
    let mut services: Vec<Arc<dyn berth_wire::Service>> = vec![
        ecs.clone(),
        Arc::new(berth_ec2::Ec2::new(store.clone(), clock.clone())),
        Arc::new(berth_elbv2::Elbv2::new(store.clone(), clock.clone()).publishing(args.publish_lb)),
        Arc::new(berth_ecr::Ecr::new(registry.clone())),
        logs.clone(),
    ];
    services.extend(unserved::all());
    let services = edge::Services::new(services);
    // Lifecycle policies and registry garbage collection.
    let lifecycle = berth_ecr::lifecycle::ControllerOptions {
        gc_grace_secs: args.registry_gc_grace as f64,
        ..Default::default()
    };
    berth_ecr::lifecycle::spawn_controller(registry.clone(), lifecycle);
    let bridge_listener = start_node(
        &args,
        &data_dir,
        local.port(),
        store.clone(),
        clock.clone(),
        logs.clone(),
        s3.clone(),
    )?;
    let auth = auth::Auth {
        enforce: args.enforce_auth,
        access_key_id: args.access_key_id.clone(),
        secret_access_key: args.secret_access_key.clone(),
    };
    // Unfinished uploads can resume (they live on disk) until they are a day old.
    tokio::spawn(expire_uploads(registry.clone()));
    tracing::info!(listen = %local, data_dir = %data_dir.display(), account = %args.account_id, enforce_auth = args.enforce_auth, "berth is serving");
    let edge = Arc::new(edge::Edge {
        services,
        registry,
        s3,
        auth,
        default_account: args.account_id.clone(),
        test_clock: args.test_clock.then(|| clock.clone()),
        connections: Arc::new(tokio::sync::Semaphore::new(args.max_connections as usize)),
        header_timeout: std::time::Duration::from_secs(args.idle_timeout),
    });
    if args.test_clock {
        tracing::warn!("the test clock is on (--test-clock): any client of this port can move Berth's time forward");
    }
    if let Some(l) = bridge_listener {
        // Tasks reach the API here (their AWS_ENDPOINT_URL); it ends with the process.
        tokio::spawn(edge::serve(edge.clone(), l, std::future::pending()));
    }
    edge::serve(edge, listener, shutdown_signal()).await;
    tracing::info!("berth stopped");
    Ok(())
}

/// The local agent: runs the tasks placed on this host. Returns the listener on the
/// bridge where tasks reach Berth's API, when there is a bridge.
fn start_node(
    args: &UpArgs,
    data_dir: &std::path::Path,
    port: u16,
    store: Arc<dyn berth_store::Store>,
    clock: berth_wire::Clock,
    logs: Arc<berth_logs::Logs>,
    s3: Arc<berth_s3::S3>,
) -> Result<Option<tokio::net::TcpListener>, String> {
    let runtime =
        berth_node::host::set_up_runtime(data_dir, &args.oci_runtime, args.cgroup_favordynmods)?;
    let content = berth_image::ContentStore::open(&data_dir.join("images"))
        .map_err(|e| format!("cannot open the image store: {e}"))?;
    let options = berth_image::PullerOptions {
        extra_ca: args.registry_ca.clone(),
        schemes: args
            .insecure_registries
            .iter()
            .filter(|r| !r.is_empty())
            .map(|r| (r.clone(), berth_image::Scheme::Http))
            .collect(),
    };
    let puller = Arc::new(
        berth_image::Puller::new(Arc::new(content), options)
            .map_err(|e| format!("cannot set up image pulls: {e}"))?,
    );
    let log_streams: berth_node::LogStreams =
        Arc::new(move |account, region, group, stream, create| {
            logs.ensure_stream(account, region, group, stream, create)
                .map_err(|e| format!("{}: {}", e.code, e.message))
        });
    // Environment files come from Berth's S3, read as the task's account.
    let env_files: berth_node::EnvFiles =
        Arc::new(move |account, arn| s3.read_env_file(account, arn));
    // Berth's own registry wants an ECR token when auth is enforced; mint one.
    let secret = registry_token_key(data_dir)
        .map_err(|e| format!("cannot keep the registry's token key: {e}"))?;
    let registry_auth: berth_node::RegistryAuth = Arc::new(move |image, account, _region| {
        let (host, img_port) = image.registry.rsplit_once(':')?;
        let own = img_port.parse::<u16>().ok() == Some(port)
            && (host == "localhost" || host == "127.0.0.1" || host.ends_with(".localhost"));
        if !own {
            return None;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        Some((
            "AWS".to_string(),
            berth_registry::token::issue(&secret, account, now + 3600.0),
        ))
    });
    // Load balancers' DNS names, kept by the data plane, answered by the tasks' resolver.
    let lb_names = berth_lb::Names::default();
    let names = lb_names.clone();
    let lookup: berth_node::dns::Lookup = Arc::new(move |n| berth_lb::resolve(&names, n));
    let credentials = berth_node::endpoints::TaskCredentials {
        access_key_id: args.access_key_id.clone(),
        secret_access_key: args.secret_access_key.clone(),
    };
    let net = berth_node::host::set_up_network(
        &store,
        credentials,
        runtime.cgroups.clone(),
        port,
        lookup,
    );
    // The load balancers' data plane: their addresses, listeners, health checks, draining.
    let instance_id = local_instance_id(data_dir)
        .map_err(|e| format!("cannot keep this host's instance id: {e}"))?;
    berth_lb::DataPlane::new(
        store.clone(),
        berth_lb::Options {
            host: net.host.as_ref().ok().cloned(),
            publish: args.publish_lb,
            instance_id: Some(instance_id),
            names: lb_names,
            threads: args.lb_threads.map(usize::from),
        },
    )
    .map_err(|e| format!("cannot start the load balancers' threads: {e}"))?
    .spawn();
    let node = berth_node::Node::new(
        store,
        clock,
        puller,
        berth_node::NodeConfig {
            tasks_dir: data_dir.join("tasks"),
            exe: PathBuf::from("/proc/self/exe"),
            runtime: runtime.program,
            runtime_root: data_dir.join("oci-state"),
            cgroups: runtime.cgroups,
            network: net.host,
            endpoint_url: net.endpoint_url,
            bridge_cidr: args.bridge_cidr,
            task_resolver: net.resolver,
        },
        log_streams,
        registry_auth,
        env_files,
    )
    .map_err(|e| format!("cannot prepare the task directory: {e}"))?;
    node.spawn();
    Ok(net.edge_listener)
}

/// This host's EC2-style instance id, made once and kept in the data directory so a
/// restart finds its registrations again.
fn local_instance_id(data_dir: &std::path::Path) -> std::io::Result<String> {
    kept_value(data_dir, "instance-id", || {
        Ok(format!(
            "i-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..17]
        ))
    })
}

/// The key that signs registry tokens: 32 random bytes made once per data directory, so
/// a token cannot be forged from the documented default secret key.
fn registry_token_key(data_dir: &std::path::Path) -> std::io::Result<String> {
    kept_value(data_dir, "registry-token-key", || {
        let mut key = [0u8; 32];
        std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut key)?;
        Ok(key.iter().map(|b| format!("{b:02x}")).collect())
    })
}

/// A value made once and kept in `data_dir/name` (readable by the owner only), durable
/// before it is used.
fn kept_value(
    data_dir: &std::path::Path,
    name: &str,
    make: impl FnOnce() -> std::io::Result<String>,
) -> std::io::Result<String> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = data_dir.join(name);
    if let Ok(v) = std::fs::read_to_string(&path) {
        return Ok(v.trim().to_string());
    }
    let value = make()?;
    let tmp = data_dir.join(format!("{name}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    std::io::Write::write_all(&mut f, value.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(data_dir)?.sync_all()?;
    Ok(value)
}

/// The host's CPU (1024 units per core) and memory (MiB) as an instance registers them.
fn host_resources() -> (i64, i64) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<i64>().ok())
        })
        .unwrap_or(0);
    (cpus * 1024, mem_kib / 1024)
}

/// `--register-instance`: register this host in each cluster once it exists, waking on
/// every store change until all are registered.
async fn register_instances(
    ecs: Arc<berth_ecs::Ecs>,
    store: Arc<dyn berth_store::Store>,
    account: String,
    mut clusters: Vec<String>,
    instance_id: String,
) {
    let mut changes = store.watch();
    let (cpu, mem) = host_resources();
    let ctx = berth_wire::RequestContext {
        account,
        region: "us-east-1".into(),
        request_id: uuid::Uuid::new_v4().to_string(),
    };
    loop {
        clusters.retain(|c| {
            match ecs.register_local_instance(&ctx, c, cpu, mem, &instance_id) {
                Ok(Some(arn)) => {
                    tracing::info!(cluster = %c, instance = %arn, cpu, memory_mib = mem, "this host is a container instance of the cluster");
                    false
                }
                Ok(None) => true,
                Err(e) => {
                    tracing::warn!(cluster = %c, error = %e.message, "cannot register this host as a container instance");
                    false
                }
            }
        });
        if clusters.is_empty() {
            return;
        }
        // Wait for any write (a cluster being created), then try again.
        match changes.recv().await {
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(_) => return,
        }
    }
}

/// The registry's blob store as `--registry-store` says.
fn open_blob_store(
    args: &UpArgs,
    dir: &std::path::Path,
) -> Result<Arc<dyn berth_registry::BlobStore>, String> {
    if args.registry_store == "local" {
        let blobs = berth_registry::FsBlobs::open(dir)
            .map_err(|e| format!("cannot open the blob store in {}: {e}", dir.display()))?;
        return Ok(Arc::new(blobs));
    }
    let (bucket, prefix) =
        berth_blobs_s3::S3Location::parse_url(&args.registry_store).ok_or_else(|| {
            format!(
                "--registry-store {}: expected local or s3://BUCKET[/PREFIX]",
                args.registry_store
            )
        })?;
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let key = |k: &str| env(k).ok_or_else(|| format!("--registry-store s3://... needs {k}"));
    let at = berth_blobs_s3::S3Location {
        bucket,
        prefix,
        endpoint: args.registry_s3_endpoint.clone(),
        region: env("AWS_REGION")
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".into()),
        access_key_id: key("AWS_ACCESS_KEY_ID")?,
        secret_access_key: key("AWS_SECRET_ACCESS_KEY")?,
    };
    let blobs = berth_blobs_s3::S3Blobs::open(&at, &dir.join("staging"))
        .map_err(|e| format!("cannot open the registry's blob store: {e}"))?;
    tracing::info!(store = %args.registry_store, "registry blobs in an S3 bucket");
    Ok(Arc::new(blobs))
}

/// How long an unfinished registry upload may wait for its next part.
const UPLOAD_MAX_AGE_SECS: f64 = 24.0 * 3600.0;

async fn expire_uploads(registry: Arc<berth_registry::Registry>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        tick.tick().await;
        let reg = registry.clone();
        let n = tokio::task::spawn_blocking(move || reg.expire_uploads(UPLOAD_MAX_AGE_SECS))
            .await
            .unwrap_or(0);
        if n > 0 {
            tracing::info!(expired = n, "removed unfinished registry uploads");
        }
    }
}

/// `ACCOUNT.dkr.ecr.REGION.localhost:PORT` only where this host resolves it (systemd-resolved,
/// macOS); `localhost:PORT` everywhere else, so handed-out names always work.
fn default_registry_host(account: &str, port: u16) -> String {
    use std::net::ToSocketAddrs;
    let named = format!("{account}.dkr.ecr.us-east-1.localhost:{port}");
    let resolves = named
        .to_socket_addrs()
        .is_ok_and(|mut addrs| addrs.any(|a| a.ip().is_loopback()));
    if resolves {
        named
    } else {
        format!("localhost:{port}")
    }
}

/// SIGTERM or SIGINT: stop serving. Tasks (once they exist) keep running for the next start.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}
