//! The `signpost` command: parses arguments and calls into the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use signpost::config::{self, Config};
use signpost::policy::Policy;
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
enum ReviewFormat {
    Table,
    Json,
    Csv,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user, or set a new password; asks for it (or reads one line from stdin).
    Add {
        #[arg(short, long)]
        file: PathBuf,
        name: String,
    },
    /// Remove a user.
    Remove {
        #[arg(short, long)]
        file: PathBuf,
        name: String,
    },
    /// List the users.
    List {
        #[arg(short, long)]
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Write the example to standard output: `signpost config example > signpost.toml`.
    Example,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Print an argon2 hash of a password for `[admin] password_hash` (asks for it, or
    /// reads one line from stdin).
    HashPassword,
}

#[derive(Subcommand)]
enum CaCommand {
    /// Write DIR/ca.pem and DIR/ca-key.pem (mode 0600): a new ECDSA P-256 CA for 10 years.
    Init {
        #[arg(long, default_value = "var")]
        dir: PathBuf,
        /// Replace an existing CA (browsers must then trust the new one).
        #[arg(long)]
        force: bool,
    },
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
    /// Summarise the journal: per category and action, acknowledgements, top sites,
    /// reasons given, blocked requests.
    Review {
        #[arg(short, long, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
        /// How far back to look, e.g. 24h, 7d.
        #[arg(long, default_value = "24h")]
        since: String,
        #[arg(long, value_enum, default_value_t = ReviewFormat::Table)]
        format: ReviewFormat,
    },
    /// Manage the users of an htpasswd file (bcrypt) for `[identity] mode = "basic"`.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Dashboard helpers.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Print a fully commented configuration for a typical council office.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Manage the interception CA.
    Ca {
        #[command(subcommand)]
        command: CaCommand,
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
        /// The user name, when proxy authentication is on ([group.NAME] users apply;
        /// directory groups are not looked up).
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
        Command::Review {
            config,
            since,
            format,
        } => review(config, &since, format),
        Command::Ca {
            command: CaCommand::Init { dir, force },
        } => ca_init(&dir, force),
        Command::User { command } => user(command),
        Command::Config {
            command: ConfigCommand::Example,
        } => {
            print!("{}", include_str!("../config/example.toml"));
            ExitCode::SUCCESS
        }
        Command::Admin {
            command: AdminCommand::HashPassword,
        } => hash_password(),
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
    // Colours only for a person at a terminal, never into journald or a file.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
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

fn review(path: PathBuf, since: &str, format: ReviewFormat) -> ExitCode {
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    let Ok(span) = humantime::parse_duration(since) else {
        eprintln!("`{since}` is not a period like 24h or 7d");
        return ExitCode::FAILURE;
    };
    let until = jiff::Timestamp::now();
    let from = jiff::SignedDuration::try_from(span)
        .ok()
        .and_then(|d| until.checked_sub(d).ok())
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    if !config.journal.path.exists() {
        eprintln!(
            "{}: no journal yet (run the proxy first; `[journal] path` in {})",
            config.journal.path.display(),
            path.display()
        );
        return ExitCode::FAILURE;
    }
    // Read-only: running `review` as another user must not leave files the proxy cannot write.
    let report = rusqlite::Connection::open_with_flags(
        &config.journal.path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .and_then(|db| signpost::journal::review::build(&db, from, until));
    match report {
        Ok(report) => {
            match format {
                ReviewFormat::Table => print!("{}", report.table()),
                ReviewFormat::Csv => print!("{}", report.csv()),
                ReviewFormat::Json => match serde_json::to_string_pretty(&report) {
                    Ok(j) => println!("{j}"),
                    Err(e) => {
                        eprintln!("{e}");
                        return ExitCode::FAILURE;
                    }
                },
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e}", config.journal.path.display());
            ExitCode::FAILURE
        }
    }
}

fn hash_password() -> ExitCode {
    use argon2::password_hash::PasswordHasher;
    let password = match read_password("the dashboard") {
        Ok(p) if !p.is_empty() => p,
        Ok(_) => {
            eprintln!("the password is empty");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    // A random salt is made by the hasher.
    match argon2::Argon2::default().hash_password(password.as_bytes()) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn user(command: UserCommand) -> ExitCode {
    use signpost::identity::htpasswd;
    let result = match command {
        UserCommand::Add { file, name } => read_password(&name).and_then(|pw| {
            htpasswd::set_user(&file, &name, &pw)
                .map(|replaced| {
                    let what = if replaced {
                        "changed the password of"
                    } else {
                        "added"
                    };
                    println!("{}: {what} {name}", file.display());
                })
                .map_err(|e| e.to_string())
        }),
        UserCommand::Remove { file, name } => htpasswd::remove_user(&file, &name)
            .map_err(|e| e.to_string())
            .and_then(|removed| {
                if removed {
                    println!("{}: removed {name}", file.display());
                    Ok(())
                } else {
                    Err(format!("{}: there is no user `{name}`", file.display()))
                }
            }),
        UserCommand::List { file } => htpasswd::list_users(&file)
            .map(|users| users.iter().for_each(|u| println!("{u}")))
            .map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Asks twice on a terminal (without echo); otherwise reads one line from stdin.
fn read_password(name: &str) -> Result<String, String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("Password for {name}: "))
            .map_err(|e| e.to_string())?;
        let again = rpassword::prompt_password("Again: ").map_err(|e| e.to_string())?;
        if first != again {
            return Err("the passwords differ".into());
        }
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }
}

fn ca_init(dir: &std::path::Path, force: bool) -> ExitCode {
    match signpost::tls::ca::init(dir, force) {
        Ok(files) => {
            println!(
                "wrote {} (the certificate browsers must trust)",
                files.cert.display()
            );
            println!(
                "wrote {} (the private key, mode 0600: keep it secret)",
                files.key.display()
            );
            println!("Point [tls] ca_cert and ca_key at them; the proxy serves the certificate at /signpost-ca.pem.");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
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
    let at = at.unwrap_or_else(jiff::Timestamp::now);
    match signpost::admin::explain_text(&policy, url, client, user, at, method) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
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
        reloader.clone().spawn(stop.clone(), watch_files);
        reopen_on_sigusr1(server.journal());
        if config.admin.enabled {
            let ctx = signpost::admin::AdminContext {
                config: config.admin.clone(),
                journal_path: config.journal.path.clone(),
                policy: server.policy(),
                reloader,
                journal: server.journal(),
                acks: server.acks(),
                clock: signpost::clock::Clock::new(),
            };
            match signpost::admin::bind(ctx).await {
                Ok(admin) => {
                    tokio::spawn(admin.run(stop.clone()));
                }
                Err(e) => {
                    tracing::error!(config = %path.display(), "{e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        server.run(stop).await;
        tracing::info!("signpost stopped");
        ExitCode::SUCCESS
    })
}

/// logrotate sends SIGUSR1 after moving the journal files: reopen them by name. The
/// handler is installed before returning (SIGUSR1's default action ends the process).
fn reopen_on_sigusr1(journal: signpost::journal::Journal) {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::user_defined1()) {
        Ok(mut usr1) => {
            tokio::spawn(async move {
                while usr1.recv().await.is_some() {
                    tracing::info!("SIGUSR1: reopening journal files");
                    journal.reopen_files();
                }
            });
        }
        Err(e) => tracing::warn!(error = %e, "cannot listen for SIGUSR1"),
    }
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
