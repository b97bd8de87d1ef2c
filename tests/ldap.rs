//! LDAP authentication against a real OpenLDAP slapd started by each test
//! (tests/common/ldap.rs; Debian's slapd and ldap-utils, installed by scripts/test.sh).

mod common;

use std::time::{Duration, Instant};

use common::ldap::{Slapd, GROUPS, PEOPLE, SERVICE_DN, SERVICE_PASSWORD};
use signpost::config::LdapConfig;
use signpost::identity::ldap::{Ldap, LdapError};

const SERVICE_ENV: &str = "SIGNPOST_TEST_LDAP_SERVICE_PW";
const WRONG_SERVICE_ENV: &str = "SIGNPOST_TEST_LDAP_WRONG_SERVICE_PW";

/// A config for `url` with everything else at its default.
fn config(url: &str) -> LdapConfig {
    toml::from_str(&format!("url = {url:?}")).unwrap()
}

/// Binds directly as `uid={user},ou=people,…`; groups read as the user.
fn template_config(url: &str) -> LdapConfig {
    let mut c = config(url);
    c.bind_dn = Some(format!("uid={{user}},{PEOPLE}"));
    c.group_base = Some(GROUPS.into());
    c
}

/// Searches for `(uid={user})` as the service account, then binds; groups read as the
/// service account.
fn search_config(url: &str) -> LdapConfig {
    std::env::set_var(SERVICE_ENV, SERVICE_PASSWORD);
    let mut c = config(url);
    c.search_base = Some(PEOPLE.into());
    c.service_dn = Some(SERVICE_DN.into());
    c.service_password_env = Some(SERVICE_ENV.into());
    c.group_base = Some(GROUPS.into());
    c
}

fn ldap(c: &LdapConfig) -> Ldap {
    Ldap::new(c).unwrap_or_else(|e| panic!("config refused: {e}"))
}

#[track_caller]
fn assert_bad(r: Result<Vec<String>, LdapError>, what: &str) {
    match r {
        Err(LdapError::BadCredentials) => {}
        other => panic!("{what}: expected BadCredentials, got {other:?}"),
    }
}

#[track_caller]
fn assert_unavailable(r: Result<Vec<String>, LdapError>, what: &str) -> String {
    match r {
        Err(LdapError::Unavailable(m)) => m,
        other => panic!("{what}: expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn bind_dn_template_accepts_the_right_password_only() {
    let slapd = Slapd::start();
    let dir = ldap(&template_config(&slapd.url));
    assert_eq!(
        dir.authenticate("alice", "alice-pw").await.unwrap(),
        ["library", "staff"]
    );
    assert_eq!(dir.authenticate("bob", "bob-pw").await.unwrap(), ["staff"]);
    assert_bad(dir.authenticate("alice", "bob-pw").await, "wrong password");
    assert_bad(
        dir.authenticate("alice", "alice-pw ").await,
        "password with a space",
    );
    assert_bad(dir.authenticate("carol", "alice-pw").await, "unknown user");
    // A DN injection is escaped into one odd uid value, which does not exist.
    assert_bad(
        dir.authenticate(&format!("alice,{PEOPLE}"), "alice-pw")
            .await,
        "a user name carrying a DN",
    );
    assert_bad(
        dir.authenticate("x,cn=signpost,dc=example,dc=org", "service-pw")
            .await,
        "a user name pointing at the service account",
    );
}

#[tokio::test]
async fn search_then_bind_with_the_service_account() {
    let slapd = Slapd::start();
    let dir = ldap(&search_config(&slapd.url));
    assert_eq!(
        dir.authenticate("alice", "alice-pw").await.unwrap(),
        ["library", "staff"]
    );
    assert_eq!(dir.authenticate("bob", "bob-pw").await.unwrap(), ["staff"]);
    assert_bad(dir.authenticate("bob", "alice-pw").await, "wrong password");
    assert_bad(dir.authenticate("carol", "carol-pw").await, "unknown user");
    // The service account is not a person: it is outside search_base.
    assert_bad(
        dir.authenticate("signpost", SERVICE_PASSWORD).await,
        "the service account's own name",
    );
}

#[tokio::test]
async fn groups_are_only_those_of_the_person() {
    let slapd = Slapd::start();
    // Without group_base: no groups, login still checked.
    let mut c = search_config(&slapd.url);
    c.group_base = None;
    let dir = ldap(&c);
    assert!(dir
        .authenticate("alice", "alice-pw")
        .await
        .unwrap()
        .is_empty());
    // Another attribute as the group name.
    let mut c = search_config(&slapd.url);
    c.group_attribute = "entryDN".into();
    c.group_filter = "(member={dn})".into();
    let dir = ldap(&c);
    assert_eq!(
        dir.authenticate("bob", "bob-pw").await.unwrap(),
        [format!("cn=staff,{GROUPS}")]
    );
    // memberUid-style filters get the (escaped) user name.
    let mut c = template_config(&slapd.url);
    c.group_filter =
        "(&(objectClass=groupOfNames)(member=uid={user},ou=people,dc=example,dc=org))".into();
    let dir = ldap(&c);
    assert_eq!(
        dir.authenticate("alice", "alice-pw").await.unwrap(),
        ["library", "staff"]
    );
}

#[tokio::test]
async fn empty_passwords_are_refused_although_the_directory_accepts_them() {
    let slapd = Slapd::start();
    // The fixture's slapd allows unauthenticated binds (a DN with an empty password)
    // as anonymous, as many directories do: a naive client would let anyone in.
    let (conn, mut raw) = ldap3::LdapConnAsync::new(&slapd.url).await.unwrap();
    ldap3::drive!(conn);
    let res = raw.simple_bind(&Slapd::user_dn("alice"), "").await.unwrap();
    assert_eq!(
        res.rc, 0,
        "the directory should accept the unauthenticated bind"
    );
    let _ = raw.unbind().await;

    for c in [template_config(&slapd.url), search_config(&slapd.url)] {
        let dir = ldap(&c);
        assert_bad(dir.authenticate("alice", "").await, "empty password");
        assert_bad(dir.authenticate("", "").await, "empty user and password");
        assert_bad(dir.authenticate("", "alice-pw").await, "empty user");
    }
}

#[tokio::test]
async fn filter_metacharacters_never_match_everyone() {
    let slapd = Slapd::start();
    let dir = ldap(&search_config(&slapd.url));
    for user in [
        "*",
        "a*",
        "*)(uid=*",
        ")(uid=*",
        "alice)(uid=*",
        "*)(|(uid=*",
        "alice)(|(objectClass=*)",
        "al\\2aice",
        "alice\0",
    ] {
        for password in ["alice-pw", "bob-pw"] {
            assert_bad(
                dir.authenticate(user, password).await,
                &format!("user name {user:?}"),
            );
        }
    }
    // And a filter written to match many entries refuses the login instead of picking one.
    let mut c = search_config(&slapd.url);
    c.search_filter = "(|(uid={user})(objectClass=inetOrgPerson))".into();
    let dir = ldap(&c);
    assert_bad(
        dir.authenticate("alice", "alice-pw").await,
        "a search matching several people",
    );
}

#[tokio::test]
async fn ldaps_trusting_the_test_ca() {
    let slapd = Slapd::start();
    let mut c = search_config(slapd.ldaps_url.as_deref().unwrap());
    c.ca_cert = Some(slapd.ca_pem.clone());
    let dir = ldap(&c);
    assert_eq!(
        dir.authenticate("alice", "alice-pw").await.unwrap(),
        ["library", "staff"]
    );
    assert_bad(
        dir.authenticate("alice", "nope").await,
        "wrong password over ldaps",
    );
}

#[tokio::test]
async fn starttls_trusting_the_test_ca() {
    let slapd = Slapd::start();
    let mut c = template_config(&slapd.url);
    c.starttls = true;
    c.ca_cert = Some(slapd.ca_pem.clone());
    let dir = ldap(&c);
    assert_eq!(dir.authenticate("bob", "bob-pw").await.unwrap(), ["staff"]);
    assert_bad(
        dir.authenticate("bob", "nope").await,
        "wrong password over StartTLS",
    );
}

#[tokio::test]
async fn a_wrong_ca_makes_the_directory_unavailable() {
    let slapd = Slapd::start();
    let other = common::ldap::unrelated_ca_pem(&slapd.dir);

    let mut c = template_config(slapd.ldaps_url.as_deref().unwrap());
    c.ca_cert = Some(other.clone());
    let m = assert_unavailable(
        ldap(&c).authenticate("alice", "alice-pw").await,
        "ldaps with a wrong CA",
    );
    assert!(m.to_lowercase().contains("certificate"), "{m}");

    let mut c = search_config(&slapd.url);
    c.starttls = true;
    c.ca_cert = Some(other);
    assert_unavailable(
        ldap(&c).authenticate("alice", "alice-pw").await,
        "StartTLS with a wrong CA",
    );

    // Without ca_cert the system's roots are used, and they do not know the test CA.
    let c = template_config(slapd.ldaps_url.as_deref().unwrap());
    assert_unavailable(
        ldap(&c).authenticate("alice", "alice-pw").await,
        "ldaps with the system's roots",
    );
}

#[tokio::test]
async fn a_wrong_service_password_is_not_the_persons_fault() {
    let slapd = Slapd::start();
    std::env::set_var(WRONG_SERVICE_ENV, "not-the-service-pw");
    let mut c = search_config(&slapd.url);
    c.service_password_env = Some(WRONG_SERVICE_ENV.into());
    assert_unavailable(
        ldap(&c).authenticate("alice", "alice-pw").await,
        "wrong service password",
    );
}

#[tokio::test]
async fn a_down_directory_is_unavailable_within_the_timeout() {
    // Nothing listening: refused at once.
    let port = common::closed_port().await;
    let mut c = template_config(&format!("ldap://127.0.0.1:{port}"));
    c.timeout.0 = Duration::from_millis(500);
    let started = Instant::now();
    assert_unavailable(
        ldap(&c).authenticate("alice", "alice-pw").await,
        "closed port",
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    // A server that accepts connections and never answers: the timeout ends it, for
    // plain LDAP (stuck in the bind), ldaps (stuck in the handshake) and StartTLS.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let ca = common::ldap::unrelated_ca_pem(&common::state_dir());
    for (url, starttls) in [
        (format!("ldap://{addr}"), false),
        (format!("ldaps://{addr}"), false),
        (format!("ldap://{addr}"), true),
    ] {
        let mut c = search_config(&url);
        c.starttls = starttls;
        c.ca_cert = Some(ca.clone());
        c.timeout.0 = Duration::from_millis(500);
        let started = Instant::now();
        let m = assert_unavailable(
            ldap(&c).authenticate("alice", "alice-pw").await,
            &format!("silent server at {url} (starttls {starttls})"),
        );
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(450) && took < Duration::from_secs(2),
            "{url}: gave up after {took:?}: {m}"
        );
    }
}

#[tokio::test]
async fn settings_that_cannot_work_are_refused() {
    let url = "ldap://127.0.0.1:1";
    let config_error = |c: &LdapConfig, what: &str| match Ldap::new(c) {
        Err(LdapError::Config(_)) => {}
        other => panic!("{what}: expected a config error, got {other:?}"),
    };

    config_error(&config(url), "neither bind_dn nor search_base");
    let mut c = template_config(url);
    c.search_base = Some(PEOPLE.into());
    config_error(&c, "both bind_dn and search_base");
    let mut c = template_config(url);
    c.bind_dn = Some(format!("uid=alice,{PEOPLE}"));
    config_error(&c, "bind_dn without {user}");
    let mut c = search_config(url);
    c.search_filter = "(uid=alice)".into();
    config_error(&c, "search_filter without {user}");
    let mut c = search_config(url);
    c.search_filter = "(uid={user}".into();
    config_error(&c, "unbalanced search_filter");
    let mut c = search_config(url);
    c.group_filter = "member={dn})".into();
    config_error(&c, "bad group_filter");
    let mut c = search_config(url);
    c.service_password_env = Some("SIGNPOST_TEST_LDAP_NO_SUCH_VARIABLE".into());
    config_error(&c, "service password variable missing");
    let mut c = search_config(url);
    c.service_password_env = None;
    config_error(&c, "service_dn without a password variable");
    let mut c = template_config(url);
    c.ca_cert = Some("/nonexistent/ca.pem".into());
    config_error(&c, "unreadable ca_cert");
    let not_pem = common::state_dir().join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    c.ca_cert = Some(not_pem);
    config_error(&c, "ca_cert without certificates");
    let mut c = template_config("ldaps://127.0.0.1:1");
    c.starttls = true;
    config_error(&c, "starttls on ldaps://");
    config_error(&template_config("http://127.0.0.1:1"), "not an LDAP URL");
    config_error(&template_config("ldap://"), "no host");

    // Anonymous search then bind (no service account) is a valid setting.
    let mut c = search_config(url);
    c.service_dn = None;
    c.service_password_env = None;
    Ldap::new(&c).unwrap();
}

#[tokio::test]
async fn a_search_base_the_searcher_cannot_see_is_an_outage() {
    // Without the service account the fixture's ACLs hide ou=people from anonymous
    // searches (noSuchObject): every login would fail, so this is reported as the
    // directory being unusable, not as a wrong password.
    let slapd = Slapd::start();
    let mut c = search_config(&slapd.url);
    c.service_dn = None;
    c.service_password_env = None;
    c.group_base = None;
    let m = assert_unavailable(
        ldap(&c).authenticate("alice", "alice-pw").await,
        "anonymous search",
    );
    assert!(m.contains("result code 32"), "{m}");
    // Likewise a group_base that does not exist.
    let mut c = search_config(&slapd.url);
    c.group_base = Some("ou=nowhere,dc=example,dc=org".into());
    assert_unavailable(
        ldap(&c).authenticate("alice", "alice-pw").await,
        "missing group_base",
    );
}
