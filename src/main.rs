//! The `signpost` command: parses arguments and calls into the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use signpost::config::{self, Config};
use signpost::net::Host;
use signpost::policy::{self, Policy};
use signpost::proxy::{upstream, Server};
use signpost::reload::Reloader;

#[derive(Parser)]
#[command(
    name = "signpost",
    version,
    about = "A web proxy that teaches instead of blocking"
)]
struct Cli {
    /// Log format on standard error. The level is set with RUST_LOG (default: info).
    #[arg(long, value_enum, default_value_t = LogFormat::Human, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy (the default when no command is given).
    Run {
        #[arg(short, long, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
        /// Reload only on SIGHUP, not when files change (e.g. where inotify does not work).
        #[arg(long)]
        no_watch: bool,
    },
    /// Validate a configuration file and its lists; exits 1 and prints file:line:column errors.
    Check {
        #[arg(short, long, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Show which category, rule and action a URL gets, and why.
    Explain {
        #[arg(short, long, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
        /// The URL, e.g. https://www.ning.com/ (https:// is judged as a CONNECT tunnel).
        url: String,
        /// The client address.
        #[arg(long, default_value = "127.0.0.1")]
        client: std::net::IpAddr,
        /// The user name, when proxy authentication is on.
        #[arg(long)]
        user: Option<String>,
        /// The instant to judge at (RFC 3339), for schedules; now by default.
        #[arg(long)]
        at: Option<jiff::Timestamp>,
        /// The request method.
        #[arg(long, default_value = "GET")]
        method: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let command = cli.command.unwrap_or(Command::Run {
        config: PathBuf::from(config::DEFAULT_PATH),
        no_watch: false,
    });
    match command {
        Command::Run { config, no_watch } => run(config, !no_watch),
        Command::Check { config } => check(config),
        Command::Explain {
            config,
            url,
            client,
            user,
            at,
            method,
        } => explain(config, &url, client, user.as_deref(), at, &method),
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn check(path: PathBuf) -> ExitCode {
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(hosts) = &config.upstream.hosts_file {
        if let Err(e) = upstream::read_hosts_file(hosts) {
            eprintln!("{}: `upstream.hosts_file`: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    let policy = match Policy::compile(&config) {
        Ok(p) => p,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    for report in &policy.list_reports {
        println!(
            "{}: {} entries, {} lines skipped",
            report.file.display(),
            report.entries,
            report.skipped
        );
        for bad in &report.first_bad {
            println!(
                "  {}:{}: skipped: {}",
                bad.file.display(),
                bad.line,
                bad.why
            );
        }
    }
    let (hosts, urls) = policy.entry_counts();
    println!(
        "{}: OK ({} categories, {} host entries, {} URL entries, {} rules)",
        path.display(),
        policy.categories.len(),
        hosts,
        urls,
        policy.rules.len()
    );
    ExitCode::SUCCESS
}

fn explain(
    path: PathBuf,
    url: &str,
    client: std::net::IpAddr,
    user: Option<&str>,
    at: Option<jiff::Timestamp>,
    method: &str,
) -> ExitCode {
    let policy = match Config::load(&path).and_then(|c| Policy::compile(&c)) {
        Ok(p) => p,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    let uri: http::Uri = match url.parse() {
        Ok(u) => u,
        Err(e) => {
            eprintln!("`{url}` is not a URL: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(host) = uri.host().and_then(|h| Host::parse(h).ok()) else {
        eprintln!("`{url}` has no valid host; write it like https://www.example.org/");
        return ExitCode::FAILURE;
    };
    // The path of an https:// URL is hidden inside the tunnel, unless it is intercepted.
    let tunnel = uri.scheme_str() == Some("https");
    let method = if tunnel {
        http::Method::CONNECT
    } else {
        match http::Method::from_bytes(method.to_ascii_uppercase().as_bytes()) {
            Ok(m) => m,
            Err(_) => {
                eprintln!("`{method}` is not an HTTP method");
                return ExitCode::FAILURE;
            }
        }
    };
    let request = policy::Request {
        host: &host,
        path: (!tunnel).then(|| uri.path()),
        method: &method,
        client,
        user,
    };
    let at = at.unwrap_or_else(jiff::Timestamp::now);
    let explanation = policy::explain(&policy, &request, at);
    print!("{}", explanation.render(&policy, &request, url));
    if tunnel {
        println!("(https: judged by host only, as a CONNECT tunnel; the path is not visible)");
    }
    ExitCode::SUCCESS
}

fn run(path: PathBuf, watch_files: bool) -> ExitCode {
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let server = match Server::bind(&config).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(config = %path.display(), "{e}");
                return ExitCode::FAILURE;
            }
        };
        let stop = CancellationToken::new();
        tokio::spawn(stop_on_signal(stop.clone()));
        let reloader = Reloader::new(path.clone(), server.policy());
        reloader.spawn(stop.clone(), watch_files);
        server.run(stop).await;
        tracing::info!("signpost stopped");
        ExitCode::SUCCESS
    })
}

/// The first SIGTERM or SIGINT starts a graceful shutdown; a second one exits at once.
async fn stop_on_signal(stop: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the proxy with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    stop.cancel();
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::warn!("second signal: exiting without waiting");
    std::process::exit(1);
}
