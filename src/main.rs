//! The `samsa` binary: parses the command line and runs the broker, or one of the
//! operator's subcommands (`samsa link ...`) against a running cluster.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use samsa::config::{Config, Overrides};

/// A Kafka-wire-compatible message broker.
#[derive(Parser, Debug)]
#[command(
    version,
    about,
    subcommand_negates_reqs = true,
    args_conflicts_with_subcommands = true
)]
struct Args {
    /// Configuration file (TOML).
    #[arg(long, value_name = "PATH", required = true)]
    config: Option<PathBuf>,
    /// Kafka listener address; overrides `listen` in the file.
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<SocketAddr>,
    /// Data directory; overrides `data_dir` in the file.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Metrics endpoint address; overrides `metrics_listen` in the file.
    #[arg(long, value_name = "HOST:PORT")]
    metrics_listen: Option<SocketAddr>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Cluster links: promote mirror topics, list them.
    #[command(subcommand)]
    Link(LinkCommand),
}

#[derive(Subcommand, Debug)]
enum LinkCommand {
    /// Stops mirroring topics and makes them writable (the failover step).
    Promote {
        /// A broker of the destination cluster.
        #[arg(long, value_name = "HOST:PORT")]
        bootstrap: String,
        /// The mirror topic to promote; repeat for several.
        #[arg(long, value_name = "TOPIC", required = true)]
        topic: Vec<String>,
    },
    /// Lists the mirror topics and their links.
    Status {
        /// A broker of the destination cluster.
        #[arg(long, value_name = "HOST:PORT")]
        bootstrap: String,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    samsa::logging::init();
    // The hooks mark the workers, on which `Partition::append_blocking` must not run.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(samsa::event_loop::mark_worker)
        .on_thread_unpark(samsa::event_loop::mark_worker)
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!("cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(Command::Link(command)) = args.command {
        let outcome = runtime.block_on(async {
            match command {
                LinkCommand::Promote { bootstrap, topic } => {
                    samsa::link::cli::promote(&bootstrap, &topic).await
                }
                LinkCommand::Status { bootstrap } => samsa::link::cli::status(&bootstrap).await,
            }
        });
        return match outcome {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("{err:#}");
                ExitCode::FAILURE
            }
        };
    }
    let Some(path) = args.config else {
        // clap requires it without a subcommand.
        return ExitCode::from(2);
    };
    let overrides = Overrides {
        listen: args.listen,
        data_dir: args.data_dir,
        metrics_listen: args.metrics_listen,
    };
    let config = match Config::load(&path, overrides) {
        Ok(config) => config,
        Err(err) => {
            tracing::error!("{err}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(samsa::server::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}
