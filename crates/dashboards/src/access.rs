//! Who may open which dashboard: `[dashboards.access]` in `observes.toml`.
//!
//! ```toml
//! [dashboards.access]
//! mode = "basic"                      # off | token | basic | proxy
//! users_file = "secrets/dashboard-users.toml"   # [[users]] kept out of this file
//! [[dashboards.access.users]]
//! name = "ana"
//! hash = "$argon2id$v=19$m=19456,t=2,p=1$…"     # observes dashboard hash < secret
//! groups = ["finance"]
//! ```
//!
//! - `token`: `Authorization: Bearer TOKEN`, checked against each user's argon2 hash;
//! - `basic`: HTTP basic, the user's name and a password with the same kind of hash;
//! - `proxy`: an authenticating proxy in front (e.g. oauth2-proxy) names the user in
//!   `proxy_header` (default `X-Forwarded-Email`), and optionally its groups in
//!   `proxy_groups_header`; only requests from `trusted_proxies` (addresses or CIDR
//!   ranges) are believed.
//!
//! A dashboard's `groups` name who may open it (a user in group `*` opens all); one with
//! none is open to everyone signed in. Credentials that passed once are remembered by
//! their SHA-256 for the server's life, so argon2's cost is paid once per credential.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use axum::http::HeaderMap;
use serde::Deserialize;
use sha2::Digest;

use crate::spec::Dashboard;

/// How the server checks who asks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessMode {
    /// Anyone who reaches the port reads everything (loopback only, or `--insecure`).
    #[default]
    Off,
    /// `Authorization: Bearer TOKEN`.
    Token,
    /// HTTP basic: a user name and password.
    Basic,
    /// A user named by a trusted proxy's header.
    Proxy,
}

impl std::fmt::Display for AccessMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AccessMode::Off => "off",
            AccessMode::Token => "token",
            AccessMode::Basic => "basic",
            AccessMode::Proxy => "proxy",
        })
    }
}

/// One who may sign in.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// The user's name (in `proxy` mode, what the proxy's header carries).
    pub name: String,
    /// The argon2 hash (PHC string) of the user's token or password; none in `proxy` mode.
    #[serde(default)]
    pub hash: Option<String>,
    /// The groups the user is in.
    #[serde(default)]
    pub groups: Vec<String>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("hash", &self.hash.as_ref().map(|_| "<redacted>"))
            .field("groups", &self.groups)
            .finish()
    }
}

/// `[dashboards.access]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessConfig {
    /// How requests are checked.
    #[serde(default)]
    pub mode: AccessMode,
    /// Users listed here.
    #[serde(default)]
    pub users: Vec<User>,
    /// A TOML file of more `[[users]]` (relative paths start at `observes.toml`'s folder).
    pub users_file: Option<PathBuf>,
    /// `proxy`: the header naming the user.
    pub proxy_header: Option<String>,
    /// `proxy`: a header listing the user's groups, comma-separated.
    pub proxy_groups_header: Option<String>,
    /// `proxy`: the addresses or CIDR ranges whose headers are believed.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

impl AccessConfig {
    /// The same, with `users_file` relative to `base`.
    pub fn resolve(mut self, base: &Path) -> AccessConfig {
        self.users_file = self.users_file.map(|f| base.join(f));
        self
    }
}

/// What is wrong with the access settings; every variant names where.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The users file could not be read.
    #[error("reading {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The users file is not a list of users.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A setting is wrong.
    #[error("[dashboards.access]: {0}")]
    Invalid(String),
}

/// Who asks, once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    /// The user's name (`None` when access is off).
    pub name: Option<String>,
    /// The user's groups.
    pub groups: Vec<String>,
}

impl Viewer {
    /// Whoever asks when access is off.
    pub fn anyone() -> Viewer {
        Viewer {
            name: None,
            groups: Vec::new(),
        }
    }

    /// Whether this viewer may open `d`.
    pub fn may_open(&self, d: &Dashboard) -> bool {
        self.name.is_none()
            || d.groups.is_empty()
            || self.groups.iter().any(|g| g == "*" || d.groups.contains(g))
    }

    /// The viewer, for a log line.
    pub fn describe(&self) -> String {
        match &self.name {
            Some(n) => format!("user {n:?}"),
            None => "anyone".into(),
        }
    }
}

/// Why a request was refused. The text is what the log says: it never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// No credentials came with the request.
    #[error("no credentials")]
    NoCredentials,
    /// The `Authorization` header is not of the mode's kind, or not readable.
    #[error("an unreadable Authorization header (expected {0})")]
    Malformed(&'static str),
    /// No user has this token.
    #[error("an unknown token")]
    UnknownToken,
    /// No user has this name.
    #[error("an unknown user name")]
    UnknownUser,
    /// The password does not match the user's hash.
    #[error("a wrong password for user {0:?}")]
    WrongPassword(String),
    /// A proxy header from an address not on the allow-list.
    #[error("{header} came from {peer}, which is not a trusted proxy")]
    UntrustedProxy {
        /// The header.
        header: String,
        /// Who sent it.
        peer: IpAddr,
    },
}

/// The access settings, checked and ready for requests.
pub struct Access {
    mode: AccessMode,
    users: Vec<User>,
    proxy_header: String,
    proxy_groups_header: Option<String>,
    trusted: Vec<ipnet::IpNet>,
    /// SHA-256 of credentials that passed, to the user's index.
    passed: Mutex<HashMap<[u8; 32], usize>>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("mode", &self.mode)
            .field("users", &self.users.len())
            .field("trusted", &self.trusted)
            .finish()
    }
}

/// Credentials remembered at most: enough for a company, bounded against a flood.
const REMEMBERED: usize = 4096;

impl Access {
    /// Access off: every request passes.
    pub fn off() -> Access {
        Access {
            mode: AccessMode::Off,
            users: Vec::new(),
            proxy_header: String::new(),
            proxy_groups_header: None,
            trusted: Vec::new(),
            passed: Mutex::new(HashMap::new()),
        }
    }

    /// Checks the settings (and reads the users file): every hash parses, the mode has
    /// what it needs.
    pub fn new(config: &AccessConfig) -> Result<Access, AccessError> {
        let mut users = config.users.clone();
        if let Some(path) = &config.users_file {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct UsersFile {
                #[serde(default)]
                users: Vec<User>,
            }
            let text = std::fs::read_to_string(path).map_err(|source| AccessError::Read {
                path: path.clone(),
                source,
            })?;
            let file: UsersFile = toml::from_str(&text).map_err(|e| AccessError::File {
                path: path.clone(),
                message: match e.span() {
                    Some(at) => format!(
                        "line {}: {}",
                        text[..at.start.min(text.len())].matches('\n').count() + 1,
                        e.message()
                    ),
                    None => e.message().to_string(),
                },
            })?;
            users.extend(file.users);
        }
        let invalid = |m: String| Err(AccessError::Invalid(m));
        let mut seen = std::collections::BTreeSet::new();
        for u in &users {
            if !seen.insert(u.name.as_str()) {
                return invalid(format!("user {:?} is listed twice", u.name));
            }
            match (&u.hash, config.mode) {
                (Some(h), _) => {
                    PasswordHash::new(h).map_err(|e| {
                        AccessError::Invalid(format!(
                            "user {:?}: the hash is not an argon2 PHC string ({e})",
                            u.name
                        ))
                    })?;
                }
                (None, AccessMode::Token | AccessMode::Basic) => {
                    return invalid(format!(
                        "user {:?} has no hash, which mode {} needs (observes dashboard hash makes one)",
                        u.name, config.mode
                    ))
                }
                (None, _) => {}
            }
        }
        let mut trusted = Vec::new();
        for entry in &config.trusted_proxies {
            let net = entry
                .parse::<ipnet::IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    AccessError::Invalid(format!(
                        "trusted_proxies: {entry:?} is not an address or a CIDR range"
                    ))
                })?;
            trusted.push(net);
        }
        match config.mode {
            AccessMode::Token | AccessMode::Basic if users.is_empty() => {
                return invalid(format!("mode {} has no users", config.mode))
            }
            AccessMode::Proxy if trusted.is_empty() => {
                return invalid(
                    "mode proxy needs trusted_proxies: the addresses of the proxy".into(),
                )
            }
            _ => {}
        }
        Ok(Access {
            mode: config.mode,
            users,
            proxy_header: config
                .proxy_header
                .clone()
                .unwrap_or_else(|| "X-Forwarded-Email".into()),
            proxy_groups_header: config.proxy_groups_header.clone(),
            trusted,
            passed: Mutex::new(HashMap::new()),
        })
    }

    /// How requests are checked.
    pub fn mode(&self) -> AccessMode {
        self.mode
    }

    /// What a refused request's `WWW-Authenticate` header says, if anything.
    pub fn challenge(&self) -> Option<&'static str> {
        match self.mode {
            AccessMode::Basic => Some("Basic realm=\"observes\", charset=\"UTF-8\""),
            AccessMode::Token => Some("Bearer realm=\"observes\""),
            AccessMode::Off | AccessMode::Proxy => None,
        }
    }

    /// Who sent a request from `peer` with `headers`. Runs argon2 for a credential not
    /// seen before: call it off the async threads.
    pub fn check(&self, peer: IpAddr, headers: &HeaderMap) -> Result<Viewer, Denied> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        match self.mode {
            AccessMode::Off => Ok(Viewer::anyone()),
            AccessMode::Proxy => {
                let Some(name) = header(&self.proxy_header).filter(|n| !n.is_empty()) else {
                    return Err(Denied::NoCredentials);
                };
                let peer = canonical(peer);
                if !self.trusted.iter().any(|net| net.contains(&peer)) {
                    return Err(Denied::UntrustedProxy {
                        header: self.proxy_header.clone(),
                        peer,
                    });
                }
                let mut groups: Vec<String> = self
                    .users
                    .iter()
                    .find(|u| u.name == name)
                    .map(|u| u.groups.clone())
                    .unwrap_or_default();
                if let Some(listed) = self.proxy_groups_header.as_deref().and_then(header) {
                    groups.extend(
                        listed
                            .split(',')
                            .map(str::trim)
                            .filter(|g| !g.is_empty())
                            .map(str::to_string),
                    );
                }
                Ok(Viewer {
                    name: Some(name.to_string()),
                    groups,
                })
            }
            AccessMode::Token => {
                let auth = header("authorization").ok_or(Denied::NoCredentials)?;
                let token = auth
                    .strip_prefix("Bearer ")
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .ok_or(Denied::Malformed("Bearer TOKEN"))?;
                let user = self.remembered_or(token, |secret| {
                    self.users
                        .iter()
                        .position(|u| verifies(u, secret))
                        .ok_or(Denied::UnknownToken)
                })?;
                Ok(self.viewer(user))
            }
            AccessMode::Basic => {
                let auth = header("authorization").ok_or(Denied::NoCredentials)?;
                let (name, password) = auth
                    .strip_prefix("Basic ")
                    .and_then(|b| {
                        use base64::Engine;
                        base64::engine::general_purpose::STANDARD
                            .decode(b.trim())
                            .ok()
                    })
                    .and_then(|raw| String::from_utf8(raw).ok())
                    .and_then(|pair| {
                        pair.split_once(':')
                            .map(|(n, p)| (n.to_string(), p.to_string()))
                    })
                    .ok_or(Denied::Malformed("Basic base64(name:password)"))?;
                let user = self.remembered_or(&format!("{name}\0{password}"), |_| {
                    let i = self
                        .users
                        .iter()
                        .position(|u| u.name == name)
                        .ok_or(Denied::UnknownUser)?;
                    if verifies(&self.users[i], &password) {
                        Ok(i)
                    } else {
                        Err(Denied::WrongPassword(name.clone()))
                    }
                })?;
                Ok(self.viewer(user))
            }
        }
    }

    fn viewer(&self, user: usize) -> Viewer {
        Viewer {
            name: Some(self.users[user].name.clone()),
            groups: self.users[user].groups.clone(),
        }
    }

    /// The user a credential that passed before belongs to, or `verify`'s answer (kept
    /// when it passes).
    fn remembered_or(
        &self,
        secret: &str,
        verify: impl FnOnce(&str) -> Result<usize, Denied>,
    ) -> Result<usize, Denied> {
        let key: [u8; 32] = sha2::Sha256::digest(secret.as_bytes()).into();
        if let Some(user) = self.passed.lock().ok().and_then(|m| m.get(&key).copied()) {
            return Ok(user);
        }
        let user = verify(secret)?;
        if let Ok(mut m) = self.passed.lock() {
            if m.len() < REMEMBERED {
                m.insert(key, user);
            }
        }
        Ok(user)
    }
}

/// An IPv4 address seen through an IPv6 socket (`::ffff:a.b.c.d`) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

fn verifies(user: &User, secret: &str) -> bool {
    user.hash
        .as_deref()
        .and_then(|h| PasswordHash::new(h).ok())
        .is_some_and(|h| {
            Argon2::default()
                .verify_password(secret.as_bytes(), &h)
                .is_ok()
        })
}

/// The argon2id hash (PHC string) of a token or password, with a fresh salt.
pub fn hash_secret(secret: &str) -> Result<String, String> {
    let salt =
        argon2::password_hash::SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("hashing: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> AccessConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn settings_are_checked_where_they_are_wrong() {
        let err = |text: &str| Access::new(&config(text)).unwrap_err().to_string();
        assert_eq!(
            err("mode = \"token\""),
            "[dashboards.access]: mode token has no users"
        );
        assert_eq!(
            err("mode = \"basic\"\n[[users]]\nname = \"ana\""),
            "[dashboards.access]: user \"ana\" has no hash, which mode basic needs (observes dashboard hash makes one)"
        );
        assert!(
            err("mode = \"basic\"\n[[users]]\nname = \"ana\"\nhash = \"plain\"").starts_with(
                "[dashboards.access]: user \"ana\": the hash is not an argon2 PHC string"
            ),
        );
        assert_eq!(
            err("mode = \"proxy\""),
            "[dashboards.access]: mode proxy needs trusted_proxies: the addresses of the proxy"
        );
        assert_eq!(
            err("mode = \"proxy\"\ntrusted_proxies = [\"10.0.0.300\"]"),
            "[dashboards.access]: trusted_proxies: \"10.0.0.300\" is not an address or a CIDR range"
        );
        let user = format!("name = \"ana\"\nhash = {:?}", hash_secret("s").unwrap());
        assert_eq!(
            err(&format!(
                "mode = \"token\"\n[[users]]\n{user}\n[[users]]\n{user}"
            )),
            "[dashboards.access]: user \"ana\" is listed twice"
        );
        let dir = std::env::temp_dir().join(format!("observes-users-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("users.toml");
        std::fs::write(&file, "[[users]]\nname = \"ana\"\ngroups = \"finance\"\n").unwrap();
        let mut with_file = config("mode = \"proxy\"\ntrusted_proxies = [\"10.0.0.1\"]");
        with_file.users_file = Some(file.clone());
        let message = Access::new(&with_file).unwrap_err().to_string();
        assert_eq!(
            message,
            format!(
                "{}: line 3: invalid type: string \"finance\", expected a sequence",
                file.display()
            )
        );
        std::fs::remove_dir_all(&dir).unwrap();
        let debug = format!("{:?}", config(&format!("[[users]]\n{user}")));
        assert!(
            !debug.contains("argon2"),
            "hashes stay out of Debug: {debug}"
        );
    }

    #[test]
    fn groups_decide_who_opens_a_dashboard() {
        let d = |groups: &[&str]| Dashboard {
            name: "d".into(),
            title: "D".into(),
            description: String::new(),
            parameters: Default::default(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            panels: Vec::new(),
        };
        let user = |groups: &[&str]| Viewer {
            name: Some("u".into()),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        };
        assert!(user(&[]).may_open(&d(&[])), "no groups: everyone signed in");
        assert!(user(&["a"]).may_open(&d(&["a", "b"])));
        assert!(!user(&["c"]).may_open(&d(&["a", "b"])));
        assert!(user(&["*"]).may_open(&d(&["a"])));
        assert!(Viewer::anyone().may_open(&d(&["a"])), "access off");
    }

    #[test]
    fn a_mapped_address_is_its_ipv4() {
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(canonical(mapped), "10.1.2.3".parse::<IpAddr>().unwrap());
    }
}
