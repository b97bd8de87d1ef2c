//! The shipped configurations and the Debian package.
//!
//! Fast tests (every run): `config/example.toml` passes `signpost check`, and the package's
//! `/etc/signpost/signpost.toml` parses, uses absolute paths only, and names only files the
//! package ships.
//!
//! The package itself is built by `packaging/build-deb.sh` (`cargo deb`: a release build,
//! about 2.5 minutes of compiling for the crate alone and over 8 minutes of CPU from a cold
//! target folder on the 2-core CI machine, too slow for every run) and checked by
//! `packaging/check-deb.sh`. The test that runs the check is ignored by default:
//!
//! ```sh
//! packaging/build-deb.sh && cargo test --test packaging -- --ignored
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

use signpost::config::Config;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The target folder: `CARGO_TARGET_TMPDIR` is `<target>/tmp`.
fn target_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).to_path_buf()
}

#[test]
fn example_config_passes_check_from_the_repository_root() {
    let out = Command::new(env!("CARGO_BIN_EXE_signpost"))
        .args(["check", "-c", "config/example.toml"])
        .current_dir(repo())
        .output()
        .expect("run signpost check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "signpost check -c config/example.toml failed:\n{stdout}{stderr}"
    );
    assert!(
        stdout.contains("config/example.toml: OK (6 categories"),
        "{stdout}"
    );
}

/// Where the package installs each of its files, read from `[package.metadata.deb] assets`
/// in Cargo.toml (sources may end in a `*` file-name pattern; a destination ending in `/`
/// is a folder).
fn packaged_files() -> Vec<PathBuf> {
    let manifest = std::fs::read_to_string(repo().join("Cargo.toml")).expect("read Cargo.toml");
    let manifest: toml::Value = toml::from_str(&manifest).expect("parse Cargo.toml");
    let assets = manifest
        .get("package")
        .and_then(|p| p.get("metadata"))
        .and_then(|m| m.get("deb"))
        .and_then(|d| d.get("assets"))
        .and_then(|a| a.as_array())
        .expect("[package.metadata.deb] assets in Cargo.toml");
    let mut installed = Vec::new();
    for asset in assets {
        let pair = asset.as_array().expect("assets are [source, dest, mode]");
        let (source, dest) = (
            pair[0].as_str().expect("source"),
            pair[1].as_str().expect("dest"),
        );
        let sources: Vec<PathBuf> = match source.rsplit_once('/') {
            Some((dir, name)) if name.contains('*') => {
                let (prefix, suffix) = name.split_once('*').unwrap_or((name, ""));
                let mut found: Vec<PathBuf> = std::fs::read_dir(repo().join(dir))
                    .unwrap_or_else(|e| panic!("asset folder {dir}: {e}"))
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                        n.starts_with(prefix) && n.ends_with(suffix)
                    })
                    .collect();
                found.sort();
                assert!(!found.is_empty(), "asset {source} matches no file");
                found
            }
            _ => vec![PathBuf::from(source)],
        };
        for s in sources {
            let to = if dest.ends_with('/') {
                Path::new("/")
                    .join(dest)
                    .join(s.file_name().expect("a file name"))
            } else {
                Path::new("/").join(dest)
            };
            installed.push(to);
        }
    }
    installed
}

#[test]
fn packaged_config_parses_and_names_only_packaged_files() {
    let path = repo().join("packaging/signpost.toml");
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let shipped = packaged_files();
    assert!(shipped.contains(&PathBuf::from("/etc/signpost/signpost.toml")));

    // State and logs: absolute, under the folders the unit may write.
    let tls = config.tls.as_ref().expect("the packaged config intercepts");
    for state in [
        &tls.ca_cert,
        &tls.ca_key,
        &config.coach.secret_file,
        &config.journal.path,
    ] {
        assert!(
            state.starts_with("/var/lib/signpost/"),
            "{} is not under /var/lib/signpost",
            state.display()
        );
    }
    for sink in [&config.journal.jsonl, &config.journal.squid_log]
        .into_iter()
        .flatten()
    {
        assert!(sink.starts_with("/var/log/signpost/"), "{}", sink.display());
    }
    assert_eq!(
        config.pages.dir.as_deref(),
        Some(Path::new("/etc/signpost/assets"))
    );

    // What `signpost check` reads must be in the package, at an absolute path.
    for category in &config.categories {
        if let Some(g) = category.guidance.as_deref().filter(|g| !g.contains('\n')) {
            assert!(
                shipped.contains(&PathBuf::from(g)),
                "guidance {g} is not packaged"
            );
        }
        for list in &category.lists {
            assert!(list.is_absolute(), "{}", list.display());
            assert!(
                shipped.iter().any(|f| f.parent() == Some(list.as_path())),
                "list folder {} holds no packaged file",
                list.display()
            );
        }
    }
}

/// Runs packaging/check-deb.sh on the newest built package.
#[test]
#[ignore = "needs target/debian/signpost_*.deb from packaging/build-deb.sh (a release build, minutes)"]
fn built_package_passes_check_deb() {
    let dir = target_dir().join("debian");
    let newest = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("signpost_") && name.ends_with(".deb")
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path());
    let Some(deb) = newest else {
        panic!(
            "no {}/signpost_*.deb: build the package with packaging/build-deb.sh, then run \
             `cargo test --test packaging -- --ignored`",
            dir.display()
        );
    };
    let status = Command::new("bash")
        .arg(repo().join("packaging/check-deb.sh"))
        .arg(&deb)
        .status()
        .expect("run packaging/check-deb.sh");
    assert!(
        status.success(),
        "packaging/check-deb.sh {} failed (its output is above)",
        deb.display()
    );
}
