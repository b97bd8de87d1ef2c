//! Hot reload: on SIGHUP, or when the config file or a list file changes, read and compile
//! the policy off the hot path and swap it whole. A config that fails keeps the old policy,
//! logs every error with file:line:column, and is counted.
//!
//! Only the policy (categories, rules, schedules, groups) is reloaded; listeners, upstream
//! settings and the PAC file apply on restart.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigErrors};
use crate::policy::Policy;

/// How long files must be quiet before a change is acted on (editors write in bursts).
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// Reload counts, for logs and metrics.
#[derive(Debug, Default)]
pub struct ReloadStats {
    pub succeeded: AtomicU64,
    pub failed: AtomicU64,
}

/// Reloads one config file into one live policy.
#[derive(Clone)]
pub struct Reloader {
    path: PathBuf,
    policy: Arc<ArcSwap<Policy>>,
    pub stats: Arc<ReloadStats>,
    /// Bumped after every reload attempt, successful or not.
    attempts: Arc<watch::Sender<u64>>,
}

impl Reloader {
    pub fn new(path: PathBuf, policy: Arc<ArcSwap<Policy>>) -> Reloader {
        Reloader {
            path,
            policy,
            stats: Arc::default(),
            attempts: Arc::new(watch::channel(0).0),
        }
    }

    /// Notified after each reload attempt (the value counts them).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.attempts.subscribe()
    }

    /// Reads, compiles and swaps. Blocking: run it off the async workers.
    pub fn reload_now(&self) -> Result<Arc<Policy>, ConfigErrors> {
        let result = Config::load(&self.path).and_then(|c| Policy::compile(&c));
        let outcome = match result {
            Ok(policy) => {
                let policy = Arc::new(policy);
                self.policy.store(policy.clone());
                self.stats.succeeded.fetch_add(1, Ordering::Relaxed);
                let (hosts, urls) = policy.entry_counts();
                tracing::info!(
                    config = %self.path.display(),
                    rules = policy.rules.len(),
                    categories = policy.categories.len(),
                    hosts,
                    urls,
                    "policy reloaded"
                );
                Ok(policy)
            }
            Err(errors) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                for e in &errors.0 {
                    tracing::error!(error = %e, "reload failed; keeping the previous policy");
                }
                Err(errors)
            }
        };
        self.attempts.send_modify(|n| *n += 1);
        outcome
    }

    async fn reload(&self) {
        let me = self.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || me.reload_now()).await {
            tracing::error!(error = %e, "reload task failed; keeping the previous policy");
        }
    }

    /// The files whose change means a reload: the config and every list file.
    fn watched_files(&self) -> BTreeSet<PathBuf> {
        let mut files: BTreeSet<PathBuf> =
            self.policy.load().sources.iter().skip(1).cloned().collect();
        files.insert(self.path.clone());
        // List folders may gain a `domains` or `urls` file later.
        if let Ok(config) = Config::load(&self.path) {
            for cat in &config.categories {
                for folder in &cat.lists {
                    files.insert(folder.join("domains"));
                    files.insert(folder.join("urls"));
                }
            }
        }
        files.into_iter().map(|p| absolute(&p)).collect()
    }

    /// Starts reloading on SIGHUP (and on file changes when `watch_files`) until `stop`.
    /// The SIGHUP handler is installed before this returns: SIGHUP's default action
    /// would end the process.
    pub fn spawn(self, stop: CancellationToken, watch_files: bool) -> tokio::task::JoinHandle<()> {
        let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .map_err(|e| tracing::warn!(error = %e, "cannot listen for SIGHUP"))
            .ok();
        tokio::spawn(self.run(stop, watch_files, hangup))
    }

    async fn run(
        self,
        stop: CancellationToken,
        watch_files: bool,
        mut hangup: Option<tokio::signal::unix::Signal>,
    ) {
        let (tx, mut rx) = mpsc::unbounded_channel::<()>();
        let mut watcher = if watch_files {
            self.start_watcher(tx.clone())
        } else {
            None
        };
        loop {
            let reason = tokio::select! {
                _ = stop.cancelled() => return,
                Some(_) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => "SIGHUP",
                Some(()) = rx.recv() => {
                    // Wait for the burst of writes to settle.
                    loop {
                        tokio::select! {
                            Some(()) = rx.recv() => continue,
                            _ = tokio::time::sleep(DEBOUNCE) => break,
                        }
                    }
                    "file change"
                }
            };
            tracing::info!(reason, "reloading the policy");
            self.reload().await;
            if let Some(w) = watcher.as_mut() {
                w.rewatch(self.watched_files());
            }
        }
    }

    fn start_watcher(&self, tx: mpsc::UnboundedSender<()>) -> Option<FileWatch> {
        let files = self.watched_files();
        let interesting = Arc::new(ArcSwap::from_pointee(files.clone()));
        let seen = interesting.clone();
        let handler = move |event: notify::Result<notify::Event>| {
            if let Ok(event) = event {
                if event.kind.is_access() {
                    return;
                }
                let files = seen.load();
                if event.paths.iter().any(|p| files.contains(p)) {
                    let _ = tx.send(());
                }
            }
        };
        match notify::recommended_watcher(handler) {
            Ok(watcher) => {
                let mut w = FileWatch {
                    watcher,
                    dirs: BTreeSet::new(),
                    interesting,
                };
                w.rewatch(files);
                Some(w)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch files; reload with SIGHUP");
                None
            }
        }
    }
}

/// The directories being watched. Watching directories, not files, catches editors that
/// save by writing a new file and renaming it over the old one.
struct FileWatch {
    watcher: notify::RecommendedWatcher,
    dirs: BTreeSet<PathBuf>,
    interesting: Arc<ArcSwap<BTreeSet<PathBuf>>>,
}

impl FileWatch {
    fn rewatch(&mut self, files: BTreeSet<PathBuf>) {
        let dirs: BTreeSet<PathBuf> = files
            .iter()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .filter(|d| d.is_dir())
            .collect();
        for gone in self.dirs.difference(&dirs) {
            let _ = self.watcher.unwatch(gone);
        }
        for new in dirs.difference(&self.dirs) {
            if let Err(e) = self.watcher.watch(new, RecursiveMode::NonRecursive) {
                tracing::warn!(dir = %new.display(), error = %e, "cannot watch for changes");
            }
        }
        self.dirs = dirs;
        self.interesting.store(Arc::new(files));
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
