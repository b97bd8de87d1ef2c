//! The proxy listener: accept → gate → read request → (classify → decide) → act.
//!
//! [`Server::bind`] turns a [`Config`] into a bound listener and the shared, read-only
//! state every connection uses; [`Server::run`] accepts until told to stop, then drains.

pub mod body;
mod coaching;
mod conn;
pub mod error;
pub(crate) mod exchange;
mod forward;
pub mod headers;
mod intercept;
pub mod io;
mod journaling;
mod local;
#[cfg(target_os = "linux")]
mod splice;
pub mod target;
mod tunnel;
pub mod upstream;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::HeaderValue;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::Clock;
use crate::coach::{AckStore, Tokens};
use crate::config::{AckScope, Config, ConfigErrors, ProxyEndpoint, TlsConfig};
use crate::journal::{Journal, Writer};
use crate::net::{Cidr, Host};
use crate::policy::Policy;
use crate::respond::{Organisation, Responder};
use crate::tls::{Ca, CaError, Minter};
use upstream::{HostsFileError, Upstream};

/// Timeouts and sizes every connection obeys.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_header_bytes: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub send_timeout: Duration,
    pub tunnel_idle_timeout: Duration,
    pub shutdown_grace: Duration,
}

/// What every connection shares. Read-only once built.
pub struct Shared {
    allow_clients: Vec<Cidr>,
    connect_ports: Vec<u16>,
    hostname: Option<String>,
    listen_ip: IpAddr,
    limits: Limits,
    upstream: Upstream,
    /// Swapped whole on reload; each exchange loads it once.
    policy: Arc<ArcSwap<Policy>>,
    responder: Responder,
    clock: Clock,
    tokens: Tokens,
    acks: Arc<AckStore>,
    ack_scope: AckScope,
    /// Present when `[tls]` is configured: interception is possible.
    minter: Option<Minter>,
    journal: Journal,
    /// Present in `[identity] mode = "basic"`.
    auth: Option<Arc<crate::identity::Authenticator>>,
    pac: Bytes,
    pac_url: String,
    /// This proxy's `Via` entry; seeing it on an incoming request means a loop.
    via: HeaderValue,
    /// Connections and tunnels, so that shutdown can wait for them.
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl Shared {
    fn allows(&self, ip: IpAddr) -> bool {
        self.allow_clients.iter().any(|net| net.contains(ip))
    }
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    HostsFile(#[from] HostsFileError),
    #[error("{0}")]
    Policy(#[from] ConfigErrors),
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error("interception CA: {0}")]
    Mint(String),
    #[error(transparent)]
    Secret(#[from] crate::coach::token::SecretError),
    #[error(transparent)]
    Store(#[from] crate::coach::store::StoreError),
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
}

/// Loads the interception CA, creating it first when allowed and missing.
fn load_ca(tls: &TlsConfig) -> Result<Minter, StartError> {
    if tls.create_if_missing && !tls.ca_cert.exists() && !tls.ca_key.exists() {
        crate::tls::ca::create(&tls.ca_cert, &tls.ca_key, false)?;
        tracing::warn!(
            cert = %tls.ca_cert.display(),
            key = %tls.ca_key.display(),
            "created a new interception CA; browsers must trust {} (see the proxy's / page, \
             or serve /signpost-ca.pem to them) before coached HTTPS sites show guidance",
            tls.ca_cert.display()
        );
    }
    let ca = Ca::load(&tls.ca_cert, &tls.ca_key)?;
    tracing::info!(ca = %ca.common_name(), cert = %tls.ca_cert.display(), "interception CA loaded");
    Minter::new(ca, tls.leaf_cache.get()).map_err(|e| StartError::Mint(e.to_string()))
}

/// A bound proxy, ready to run.
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
    writer: Writer,
}

impl Server {
    /// Compiles the policy, binds the listener and builds the shared state. Nothing is
    /// accepted until `run`.
    pub async fn bind(config: &Config) -> Result<Server, StartError> {
        let policy = Policy::compile(config)?;
        Server::bind_with_policy(config, policy).await
    }

    /// As [`Server::bind`], with a policy compiled by the caller.
    pub async fn bind_with_policy(config: &Config, policy: Policy) -> Result<Server, StartError> {
        let p = &config.proxy;
        let clock = Clock::new();
        let minter = config.tls.as_ref().map(load_ca).transpose()?;
        if minter.is_none()
            && policy
                .rules
                .iter()
                .any(|r| r.action == crate::config::Action::Coach)
        {
            tracing::warn!(
                "no [tls] section: coached HTTPS sites are refused (403) because their guidance \
                 cannot be shown without interception; plain HTTP sites get the interstitial"
            );
        }
        let auth = match config.identity.mode {
            crate::config::IdentityMode::Ip => None,
            crate::config::IdentityMode::Basic => {
                Some(crate::identity::Authenticator::new(&config.identity)?)
            }
        };
        let tokens = Tokens::load_or_create(&config.coach.secret_file)?;
        let pseudo = config.journal.pseudonymise.then(|| tokens.pseudonymiser());
        let (journal, writer) = crate::journal::start(&config.journal, pseudo)?;
        let addr = p.listen.0;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| StartError::Bind { addr, source })?;

        let machine = gethostname::gethostname()
            .to_string_lossy()
            .to_ascii_lowercase();
        let hostname = p.hostname.as_ref().map(|h| h.0.clone());
        // How browsers are told to reach us: the configured name, else the address we
        // listen on, else this machine's name.
        let reach_host = match (&hostname, local.ip()) {
            (Some(h), _) => Host::Name(h.clone()),
            (None, ip) if !ip.is_unspecified() => Host::Ip(ip),
            (None, _) => Host::Name(machine.clone()),
        };
        let proxies = if config.pac.proxies.is_empty() {
            vec![ProxyEndpoint {
                host: reach_host.clone(),
                port: local.port(),
            }]
        } else {
            config.pac.proxies.clone()
        };
        let pac = crate::pac::generate(&config.pac.direct, &proxies);
        let via_name = hostname.clone().unwrap_or(machine);
        let via = HeaderValue::from_str(&format!("1.1 {via_name} (signpost)"))
            .unwrap_or_else(|_| HeaderValue::from_static("1.1 signpost"));

        let shared = Shared {
            allow_clients: p.allow_clients.clone(),
            connect_ports: p.connect_ports.iter().map(|p| p.0).collect(),
            hostname,
            listen_ip: local.ip(),
            limits: Limits {
                max_header_bytes: p.max_header_bytes.get(),
                header_timeout: p.header_timeout.0,
                idle_timeout: p.idle_timeout.0,
                send_timeout: p.send_timeout.0,
                tunnel_idle_timeout: p.tunnel_idle_timeout.0,
                shutdown_grace: p.shutdown_grace.0,
            },
            upstream: Upstream::new(&config.upstream)?,
            policy: Arc::new(ArcSwap::from_pointee(policy)),
            responder: Responder::with_overrides(
                via.to_str().unwrap_or_default().to_string(),
                Organisation {
                    name: config.organisation.name.clone(),
                    acceptable_use_url: config.organisation.acceptable_use_url.clone(),
                    contact: config.organisation.contact.clone(),
                },
                config.pages.dir.as_deref(),
            ),
            clock,
            tokens,
            acks: Arc::new(AckStore::open(&config.journal.path, clock.now())?),
            ack_scope: config.coach.scope,
            minter,
            journal,
            auth,
            pac: Bytes::from(pac),
            pac_url: format!("http://{reach_host}:{}/proxy.pac", local.port()),
            via,
            tasks: TaskTracker::new(),
            shutdown: CancellationToken::new(),
        };
        Ok(Server {
            listener,
            permits: Arc::new(Semaphore::new(p.max_connections.get())),
            shared: Arc::new(shared),
            writer,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The journal, for reopening its files on SIGUSR1 and for metrics.
    pub fn journal(&self) -> Journal {
        self.shared.journal.clone()
    }

    /// The acknowledgement store, for the dashboard.
    pub fn acks(&self) -> Arc<AckStore> {
        Arc::clone(&self.shared.acks)
    }

    /// The live policy, for reloading.
    pub fn policy(&self) -> Arc<ArcSwap<Policy>> {
        self.shared.policy.clone()
    }

    /// The URL of the PAC file as browsers should be given it.
    pub fn pac_url(&self) -> &str {
        &self.shared.pac_url
    }

    /// Accepts connections until `stop` is cancelled, then stops accepting, lets open
    /// exchanges finish within `proxy.shutdown_grace`, and returns.
    pub async fn run(self, stop: CancellationToken) {
        let Server {
            listener,
            shared,
            permits,
            writer,
        } = self;
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, pac = %shared.pac_url, "signpost is listening");
        }
        let mut backoff = Duration::from_millis(5);
        loop {
            let accepted = tokio::select! {
                _ = stop.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, peer)) => {
                    backoff = Duration::from_millis(5);
                    let _ = stream.set_nodelay(true);
                    let permit = permits.clone().try_acquire_owned().ok();
                    let shared2 = shared.clone();
                    // One span per connection; `target` is filled in by each request.
                    let span = tracing::info_span!(
                        "conn",
                        client = %crate::net::canonical_ip(peer.ip()),
                        target = tracing::field::Empty,
                    );
                    shared.tasks.spawn(tracing::Instrument::instrument(
                        conn::serve(shared2, stream, peer, permit),
                        span,
                    ));
                }
                Err(e) => {
                    // Usually out of file descriptors: wait rather than spin.
                    tracing::warn!(error = %e, "accept failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
        drop(listener);
        shared.shutdown.cancel();
        shared.tasks.close();
        let grace = shared.limits.shutdown_grace;
        tracing::info!(open = shared.tasks.len(), grace = ?grace, "stopped accepting; draining");
        if tokio::time::timeout(grace, shared.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                open = shared.tasks.len(),
                "connections still open after the shutdown grace period; closing them"
            );
        }
        // Everything journaled so far reaches the store before we return.
        let _ = tokio::task::spawn_blocking(move || writer.finish(Duration::from_secs(10))).await;
        let stats = &shared.journal.stats;
        tracing::info!(
            written = stats.written.load(std::sync::atomic::Ordering::Relaxed),
            dropped = stats.dropped.load(std::sync::atomic::Ordering::Relaxed),
            lost = stats.lost.load(std::sync::atomic::Ordering::Relaxed),
            "journal closed"
        );
    }
}
