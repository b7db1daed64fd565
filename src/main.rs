use clap::{CommandFactory, FromArgMatches, Parser};
use std::path::PathBuf;

use openhands_server::config::{CliOverrides, Config};

/// A wire-compatible OpenHands agent server in one binary.
#[derive(Parser, Debug)]
#[command(name = "openhands-server", version, about)]
struct Cli {
    /// Address to bind (env BACKEND_HOST; default 127.0.0.1).
    #[arg(long)]
    host: Option<String>,
    /// Port to listen on; 0 picks a free one (env BACKEND_PORT; default 3000).
    #[arg(long)]
    port: Option<u16>,
    /// Configuration file (default: ./config.toml if present).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where conversations are stored (env FILE_STORE_PATH; default ~/.openhands).
    #[arg(long)]
    file_store_path: Option<String>,
    /// Keep conversations, events and settings in PostgreSQL at this `postgres://` URL
    /// instead of SQLite under the file store (env DATABASE_URL).
    #[arg(long)]
    database_url: Option<String>,
    /// The workspace shared by conversations (env WORKSPACE_BASE).
    #[arg(long)]
    workspace_base: Option<String>,
    /// Serve a non-loopback address without a session key, for deployments that
    /// authenticate users themselves (env OPENHANDS_NO_AUTH=1). Without it, a network
    /// bind with no SESSION_API_KEY gets a random key, printed with the URL to open.
    #[arg(long)]
    no_auth: bool,
}

fn main() -> anyhow::Result<()> {
    openhands_server::runtime::child_env::stop_inheriting_descriptors();
    let matches = Cli::command()
        .long_version(openhands_server::build_info::long_version())
        .get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let overrides = CliOverrides {
        config: cli.config,
        host: cli.host,
        port: cli.port,
        file_store_path: cli.file_store_path,
        database_url: cli.database_url,
        workspace_base: cli.workspace_base,
        no_auth: cli.no_auth,
    };
    let config = match Config::load(&overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("openhands-server: {e}");
            std::process::exit(2);
        }
    };
    let default_level = if config.file.core.debug {
        "debug"
    } else {
        "info"
    };
    openhands_server::logging::init(
        default_level,
        openhands_server::logging::LogFormat::from_env(),
    );
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(openhands_server::server::run(config))
}
