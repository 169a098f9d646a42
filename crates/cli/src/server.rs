//! `cauce server`: runs a broker until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use cauce_broker::{BrokerConfig, Server};

#[derive(clap::Args)]
pub struct ServerArgs {
    /// TOML file with Kafka-named keys (see config/cauce.toml); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where partitions and metadata are stored [default: ./cauce-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address the Kafka listener binds [default: 127.0.0.1:9092].
    #[arg(long)]
    listen: Option<String>,
    /// Address given to clients [default: the listen address].
    #[arg(long)]
    advertised_listener: Option<String>,
}

pub fn run(args: ServerArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => BrokerConfig::from_file(path)?,
        None => BrokerConfig::default(),
    };
    // RUST_LOG wins over the config file's `logging.level`, as operators expect.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.logging_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(listen) = &args.listen {
        config.set("listeners", listen)?;
    }
    if let Some(advertised) = &args.advertised_listener {
        config.set("advertised.listeners", advertised)?;
    }
    tune_allocator();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let server = Server::start(config)
            .await
            .context("broker failed to start")?;
        let address: SocketAddr = server.local_addr();
        // Tests and scripts wait for this line; it is printed once the broker accepts requests.
        println!("cauce listening on {address}");
        tracing::info!(%address, "broker ready");
        server.run(stop_signal()).await?;
        Ok(())
    })
}

/// Requests and fetch reads allocate buffers of up to a few MiB and free them soon after. glibc
/// serves such sizes with `mmap` and returns them with `munmap`, so every request paid page
/// faults and page zeroing for its buffer: that doubled the broker's CPU per fetched record.
/// Serving them from the heap reuses the pages. Fetch reads run on blocking-pool threads, and
/// glibc gives each thread an arena of its own by default; capping the arenas at the number of
/// cores keeps freed memory from being spread over many of them (peak RSS under load fell from
/// about 45 to 35 MiB; BENCHMARKS.md has the figures).
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const MMAP_THRESHOLD_BYTES: libc::c_int = 4 << 20;
        const TRIM_THRESHOLD_BYTES: libc::c_int = 8 << 20;
        let arenas = std::thread::available_parallelism()
            .map_or(2, |cores| cores.get())
            .try_into()
            .unwrap_or(libc::c_int::MAX);
        // SAFETY: `mallopt` only changes allocator parameters; it is called before any other
        // thread exists.
        let applied = unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
                && libc::mallopt(libc::M_ARENA_MAX, arenas) == 1
        };
        if !applied {
            tracing::warn!("could not tune the allocator; large requests will be slower");
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
