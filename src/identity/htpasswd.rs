//! htpasswd files with bcrypt hashes (`user:$2y$…`), re-read when they change, and the
//! `signpost user add|remove|list` edits (written atomically, never world-readable).

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

#[derive(Debug, thiserror::Error)]
pub enum HtpasswdError {
    #[error("htpasswd file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

struct Loaded {
    users: HashMap<String, String>,
    modified: Option<SystemTime>,
    len: u64,
}

/// An htpasswd file, kept in memory and reloaded when it changes on disk.
pub struct Htpasswd {
    path: PathBuf,
    state: Mutex<Loaded>,
}

impl Htpasswd {
    pub fn open(path: &Path) -> Result<Htpasswd, HtpasswdError> {
        let loaded = load(path)?;
        Ok(Htpasswd {
            path: path.to_path_buf(),
            state: Mutex::new(loaded),
        })
    }

    /// The bcrypt hash for `user`, after re-reading the file if it changed. Only asked on
    /// a login the cache does not know, so looking at the file each time costs nothing
    /// next to bcrypt.
    pub fn hash_for(&self, user: &str) -> Option<String> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        {
            let meta = std::fs::metadata(&self.path).ok();
            let modified = meta.as_ref().and_then(|m| m.modified().ok());
            let len = meta.map_or(0, |m| m.len());
            if modified != state.modified || len != state.len {
                match load(&self.path) {
                    Ok(new) => {
                        tracing::info!(file = %self.path.display(), users = new.users.len(), "htpasswd file re-read");
                        *state = new;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot re-read the htpasswd file; keeping the previous one")
                    }
                }
            }
        }
        state.users.get(user).cloned()
    }
}

fn load(path: &Path) -> Result<Loaded, HtpasswdError> {
    let io = |source| HtpasswdError::Io {
        path: path.display().to_string(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    let text = std::fs::read_to_string(path).map_err(io)?;
    let (users, skipped) = parse(&text);
    for (line, why) in skipped.iter().take(5) {
        tracing::warn!(file = %path.display(), line, why, "skipped an htpasswd line");
    }
    Ok(Loaded {
        users,
        modified: meta.modified().ok(),
        len: meta.len(),
    })
}

/// Users and their bcrypt hashes; other hash kinds are skipped (they are weak).
pub fn parse(text: &str) -> (HashMap<String, String>, Vec<(usize, String)>) {
    let mut users = HashMap::new();
    let mut skipped = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once(':') {
            Some((user, hash))
                if !user.is_empty()
                    && ["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p)) =>
            {
                users.insert(user.to_string(), hash.to_string());
            }
            Some((user, _)) => skipped.push((
                i + 1,
                format!(
                    "user `{user}` has no bcrypt hash (use `signpost user add` or htpasswd -B)"
                ),
            )),
            None => skipped.push((i + 1, "not a `user:hash` line".into())),
        }
    }
    (users, skipped)
}

/// Checks a user name is something a browser can send in Basic credentials.
pub fn valid_user_name(user: &str) -> Result<(), HtpasswdError> {
    if user.is_empty()
        || user.len() > 256
        || user.contains(':')
        || user.chars().any(char::is_control)
    {
        return Err(HtpasswdError::Invalid(format!(
            "`{user}` is not a usable user name (no colons or control characters, 1 to 256 bytes)"
        )));
    }
    Ok(())
}

/// Adds or replaces a user (bcrypt, cost 12) and rewrites the file atomically (mode 0640).
pub fn set_user(path: &Path, user: &str, password: &str) -> Result<bool, HtpasswdError> {
    valid_user_name(user)?;
    if password.is_empty() {
        return Err(HtpasswdError::Invalid("the password is empty".into()));
    }
    let hash = bcrypt::hash(password, 12).map_err(|e| HtpasswdError::Invalid(e.to_string()))?;
    edit(path, |lines| {
        let existed = lines.iter().any(|l| l.split(':').next() == Some(user));
        lines.retain(|l| l.split(':').next() != Some(user));
        lines.push(format!("{user}:{hash}"));
        existed
    })
}

/// Removes a user; false when there was none.
pub fn remove_user(path: &Path, user: &str) -> Result<bool, HtpasswdError> {
    edit(path, |lines| {
        let before = lines.len();
        lines.retain(|l| l.split(':').next() != Some(user));
        lines.len() != before
    })
}

/// The user names in the file.
pub fn list_users(path: &Path) -> Result<Vec<String>, HtpasswdError> {
    let text = std::fs::read_to_string(path).map_err(|source| HtpasswdError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let mut users: Vec<String> = parse(&text).0.into_keys().collect();
    users.sort();
    Ok(users)
}

fn edit(path: &Path, change: impl FnOnce(&mut Vec<String>) -> bool) -> Result<bool, HtpasswdError> {
    let io = |source| HtpasswdError::Io {
        path: path.display().to_string(),
        source,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io(e)),
    };
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let result = change(&mut lines);
    let tmp = path.with_extension("signpost-tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .open(&tmp)
        .map_err(io)?;
    for l in &lines {
        writeln!(f, "{l}").map_err(io)?;
    }
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_list_remove_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        assert!(!set_user(&path, "alice", "s3cret").unwrap());
        assert!(set_user(&path, "alice", "n3w").unwrap(), "replaced");
        set_user(&path, "bob", "pw").unwrap();
        assert_eq!(list_users(&path).unwrap(), vec!["alice", "bob"]);
        let file = Htpasswd::open(&path).unwrap();
        let hash = file.hash_for("alice").unwrap();
        assert!(bcrypt::verify("n3w", &hash).unwrap());
        assert!(!bcrypt::verify("s3cret", &hash).unwrap());
        assert!(remove_user(&path, "bob").unwrap());
        assert!(!remove_user(&path, "bob").unwrap());
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o640);
        assert!(set_user(&path, "a:b", "x").is_err());
        assert!(set_user(&path, "carol", "").is_err());
    }

    #[test]
    fn weak_hashes_and_junk_are_skipped() {
        let (users, skipped) =
            parse("alice:$2y$05$abcdefghijklmnopqrstuu\n# c\nbob:{SHA}xyz\njunk\n");
        assert_eq!(users.len(), 1);
        assert_eq!(skipped.len(), 2);
    }
}
