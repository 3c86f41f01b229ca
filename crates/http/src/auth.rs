//! How a request proves who sends it. Every secret here is also registered for redaction.

use reqwest::RequestBuilder;

use crate::oauth::OAuth2Tokens;

/// How requests authenticate.
#[derive(Clone)]
pub enum Auth {
    /// No credentials.
    None,
    /// A token in a header of the API's choosing (GitLab's `PRIVATE-TOKEN`).
    Header {
        /// The header.
        name: String,
        /// The token (a secret: never logged).
        value: String,
    },
    /// `Authorization: Bearer …`.
    Bearer(String),
    /// `Authorization: Basic …`.
    Basic {
        /// The user.
        user: String,
        /// The password (a secret).
        password: String,
    },
    /// A bearer token obtained and renewed with an OAuth2 refresh token.
    OAuth2(OAuth2Tokens),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets never reach logs, not even through Debug.
        match self {
            Auth::None => f.write_str("Auth::None"),
            Auth::Header { name, .. } => write!(f, "Auth::Header({name}: ***)"),
            Auth::Bearer(_) => f.write_str("Auth::Bearer(***)"),
            Auth::Basic { user, .. } => write!(f, "Auth::Basic({user}:***)"),
            Auth::OAuth2(tokens) => write!(f, "Auth::OAuth2({:?})", tokens.settings),
        }
    }
}

impl Auth {
    /// Adds the static credentials; an OAuth2 token is added by the client, which
    /// obtains it first.
    pub fn apply(&self, request: RequestBuilder) -> RequestBuilder {
        match self {
            Auth::None | Auth::OAuth2(_) => request,
            Auth::Header { name, value } => request.header(name.as_str(), value.as_str()),
            Auth::Bearer(token) => request.bearer_auth(token),
            Auth::Basic { user, password } => request.basic_auth(user, Some(password)),
        }
    }

    /// The values that must be redacted wherever text could show them.
    pub fn secrets(&self) -> Vec<String> {
        match self {
            Auth::None => Vec::new(),
            Auth::Header { value, .. } => vec![value.clone()],
            Auth::Bearer(token) => vec![token.clone()],
            Auth::Basic { password, .. } => vec![password.clone()],
            Auth::OAuth2(tokens) => tokens.static_secrets(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_secret() {
        let auth = Auth::Header {
            name: "PRIVATE-TOKEN".into(),
            value: "glpat-s3cret".into(),
        };
        assert_eq!(format!("{auth:?}"), "Auth::Header(PRIVATE-TOKEN: ***)");
        let basic = Auth::Basic {
            user: "bot".into(),
            password: "pw".into(),
        };
        assert_eq!(format!("{basic:?}"), "Auth::Basic(bot:***)");
        assert_eq!(basic.secrets(), vec!["pw".to_string()]);
    }
}
