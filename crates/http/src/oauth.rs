//! OAuth2 refresh-token authentication (RFC 6749 §6), as GitLab and Zoho use it.
//!
//! The access token is fetched on first use, renewed shortly before it expires and again
//! when the API answers 401 (it expired early or was revoked). Servers that rotate
//! refresh tokens (GitLab does: the old one stops working) hand back a new one; it is
//! kept in memory and, when `rotated_token_file` is set, written there so the next run
//! can use it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Settings of the refresh grant.
#[derive(Clone)]
pub struct OAuth2Refresh {
    /// The accounts server's token endpoint.
    pub token_url: String,
    /// The client id.
    pub client_id: String,
    /// The client secret (a secret).
    pub client_secret: String,
    /// The refresh token (a secret).
    pub refresh_token: String,
    /// Where a rotated refresh token is saved (mode 0600), if anywhere.
    pub rotated_token_file: Option<PathBuf>,
    /// How the grant's parameters travel.
    pub grant_params: GrantParams,
    /// The `Authorization` scheme of the access token: `Bearer`, or Zoho's
    /// `Zoho-oauthtoken`.
    pub scheme: String,
}

/// Where the refresh grant's parameters go: a form body (RFC 6749) or, as Zoho's
/// accounts servers take them, the URL's query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GrantParams {
    /// In a form body.
    #[default]
    Form,
    /// In the URL's query.
    Query,
}

impl std::fmt::Debug for OAuth2Refresh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "OAuth2Refresh({} as {}, ***)",
            self.token_url, self.client_id
        )
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct TokenAnswer {
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// A refusal: Zoho answers one with 200 and `{"error": "invalid_code"}`.
    #[serde(default)]
    pub error: Option<String>,
    /// Where the account's API lives (Zoho: the data centre).
    #[serde(default)]
    pub api_domain: Option<String>,
}

/// The tokens of one OAuth2 client, shared by the clones of an [`crate::HttpClient`].
#[derive(Clone)]
pub struct OAuth2Tokens {
    pub(crate) settings: Arc<OAuth2Refresh>,
    pub(crate) current: Arc<Mutex<Tokens>>,
    /// A copy of the live secrets for redaction, readable without awaiting.
    pub(crate) live: Arc<std::sync::Mutex<Vec<String>>>,
}

pub(crate) struct Tokens {
    pub refresh_token: String,
    pub access: Option<(String, Instant)>,
    pub api_domain: Option<String>,
}

/// Renew this long before the announced expiry.
const EARLY: Duration = Duration::from_secs(60);

impl OAuth2Tokens {
    /// Tokens obtained with `settings`, none yet (the first request gets one).
    pub fn new(settings: OAuth2Refresh) -> OAuth2Tokens {
        let refresh_token = settings.refresh_token.clone();
        OAuth2Tokens {
            live: Arc::new(std::sync::Mutex::new(vec![refresh_token.clone()])),
            current: Arc::new(Mutex::new(Tokens {
                refresh_token,
                access: None,
                api_domain: None,
            })),
            settings: Arc::new(settings),
        }
    }

    pub(crate) fn static_secrets(&self) -> Vec<String> {
        vec![
            self.settings.client_secret.clone(),
            self.settings.refresh_token.clone(),
        ]
    }

    pub(crate) fn live_secrets(&self) -> Vec<String> {
        self.live.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The API domain the last token answer named, if any.
    pub async fn api_domain(&self) -> Option<String> {
        self.current.lock().await.api_domain.clone()
    }

    /// The held access token, unless it is about to expire.
    pub(crate) fn usable(current: &Tokens) -> Option<String> {
        match &current.access {
            Some((token, expires)) if Instant::now() + EARLY < *expires => Some(token.clone()),
            _ => None,
        }
    }

    /// Takes in a refresh answer, saving a rotated refresh token first (losing it would
    /// lock the next run out).
    pub(crate) fn take_answer(
        &self,
        current: &mut Tokens,
        answer: TokenAnswer,
    ) -> Result<String, String> {
        if let Some(error) = answer.error {
            return Err(format!("the token server refused the grant: {error}"));
        }
        let Some(access_token) = answer.access_token.filter(|t| !t.is_empty()) else {
            return Err("the token answer has no access_token".into());
        };
        if let Some(rotated) = answer.refresh_token.filter(|t| !t.is_empty()) {
            if rotated != current.refresh_token {
                if let Some(path) = &self.settings.rotated_token_file {
                    save_secret(path, &rotated).map_err(|e| {
                        format!(
                            "saving the rotated refresh token to {}: {e}",
                            path.display()
                        )
                    })?;
                }
                current.refresh_token = rotated;
            }
        }
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(3600));
        current.access = Some((access_token.clone(), Instant::now() + lifetime));
        if answer.api_domain.is_some() {
            current.api_domain = answer.api_domain;
        }
        if let Ok(mut live) = self.live.lock() {
            *live = vec![current.refresh_token.clone(), access_token.clone()];
        }
        Ok(access_token)
    }
}

/// Writes a secret so only its owner can read it, replacing the file atomically.
fn save_secret(path: &std::path::Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    file.write_all(secret.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}
